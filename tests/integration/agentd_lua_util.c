/* Helpers of the Lua integration tests: see agentd_lua_util.h. */
#include "agentd_lua_util.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void die(const char *what, const char *path)
{
    fprintf(stderr, "FATAL: %s %s\n", what, path);
    exit(1);
}

const char *lt_lua_dir(void)
{
    static char dir[600];
    char *t = th_tmpdir();
    snprintf(dir, sizeof dir, "%s/lua", t);
    free(t);
    if (mkdir(dir, 0755) != 0)
        die("cannot create", dir);
    setenv("JETSCHED_AGENT_LUA_DIR", dir, 1);
    return dir;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot read", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n)
        die("cannot read", path);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

void lt_copy(const char *dir, const char *src, const char *handler)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", th_require_env("JETSCHED_SOURCE_DIR"), src);
    size_t len;
    char *text = slurp(path, &len);
    lt_write(dir, handler, text);
    free(text);
}

void lt_write(const char *dir, const char *handler, const char *text)
{
    char tmp[1024], path[1024];
    snprintf(tmp, sizeof tmp, "%s/.%s.lua.tmp", dir, handler);
    snprintf(path, sizeof path, "%s/%s.lua", dir, handler);
    FILE *f = fopen(tmp, "wb");
    if (!f || fwrite(text, 1, strlen(text), f) != strlen(text) || fclose(f) != 0)
        die("cannot write", tmp);
    if (rename(tmp, path) != 0)
        die("cannot rename to", path);
}

double lt_metric(const ts_agent *ag, const char *name)
{
    static char body[1 << 17];
    if (ts_agent_http(ag, "/metrics", body, sizeof body) != 200)
        return -1;
    size_t n = strlen(name);
    for (char *line = body; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            return atof(line + n + 1);
    return -1;
}

void lt_kv_put(const char *bucket, const char *key, const char *value)
{
    kvStore *kv = NULL;
    uint64_t rev = 0;
    CHECK(js_KeyValue(&kv, ts_js(), bucket) == NATS_OK && kvStore_PutString(&rev, kv, key, value) == NATS_OK,
          "cannot put %s/%s", bucket, key);
    kvStore_Destroy(kv);
}

char *lt_registry(const char *agent_id)
{
    kvStore *kv = NULL;
    kvEntry *e = NULL;
    char *v = NULL;
    if (js_KeyValue(&kv, ts_js(), "jetsched_agents") == NATS_OK && kvStore_Get(&e, kv, agent_id) == NATS_OK &&
        kvEntry_Operation(e) == kvOp_Put)
        v = strndup(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e));
    kvEntry_Destroy(e);
    kvStore_Destroy(kv);
    return v;
}

bool lt_wait_log(const ts_agent *ag, const char *text, int timeout_ms)
{
    for (int64_t until = ts_now_ms() + timeout_ms; ts_now_ms() < until; ts_sleep_ms(100))
        if (ts_log_contains(ag, text))
            return true;
    return ts_log_contains(ag, text);
}
