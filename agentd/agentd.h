/* agentd internals shared between its modules. */
#ifndef AGENTD_H
#define AGENTD_H

#include <jetsched/config.h>

extern const jet_cfg_key *const agentd_schema[];

#endif
