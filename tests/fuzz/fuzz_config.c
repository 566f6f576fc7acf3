/* Fuzz target: the configuration loader (common/config.c on libconfig)
 * with the agentd and schedulerd schemas: any file text either loads (and
 * then prints) or fails with file:line messages. */
#include <jetsched/config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

extern const jet_cfg_key *const agentd_schema[];
extern const jet_cfg_key *const schedulerd_schema[];

static char path[128];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/jetsched-fuzz-config-%d.conf", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    const jet_cfg_key *const *schemas[] = {agentd_schema, schedulerd_schema};
    for (int i = 0; i < 2; i++) {
        jet_config *cfg = NULL;
        jet_err err;
        if (jet_config_load(schemas[i], path, &cfg, &err) == JET_OK) {
            FILE *null = fopen("/dev/null", "w");
            jet_config_print(cfg, null);
            fclose(null);
            jet_config_free(cfg);
        }
    }
    return 0;
}
