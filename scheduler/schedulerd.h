/* schedulerd internals shared between its modules. */
#ifndef SCHEDULERD_H
#define SCHEDULERD_H

#include <jetsched/config.h>

extern const jet_cfg_key *const schedulerd_schema[];

#endif
