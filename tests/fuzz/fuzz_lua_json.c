/* Fuzz target: the Lua json module (agentd/lua/json.c) through the Lua host
 * as agentd runs it (a sandboxed state under its memory cap, a handler
 * script). The input is the task payload; the script (below) checks that
 *  - json.decode either returns a value or raises a clean error,
 *  - a decoded value encodes, and decoding that text and encoding it again
 *    gives the same text (sort_keys: a canonical form),
 *  - json.encode of the payload as a string fails only for invalid UTF-8 and
 *    otherwise decodes back to the same bytes.
 * A violation makes the task fail; any outcome but success aborts. The host
 * API is the plugin tests' one (tests/plugins/test_host.c). */
#include "lua/host.h"
#include "test_host.h"

#include <jetsched/log.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char script[] =
    "local S = { sort_keys = true }\n"
    "return { handle = function(task)\n"
    "  local text = task.payload\n"
    "  local ok, v = pcall(json.decode, text)\n"
    "  if ok then\n"
    "    local once = json.encode(v, S)\n"
    "    local twice = json.encode(json.decode(once), S)\n"
    "    if once ~= twice then error('round trip changed ' .. once .. ' into ' .. twice) end\n"
    "    json.encode(v, { indent = 2 })\n"
    "  elseif type(v) ~= 'string' or not v:find('^json%.decode: .* %(line %d+, column %d+%)$') then\n"
    "    error('unclean decode error: ' .. tostring(v))\n"
    "  end\n"
    "  local eok, s = pcall(json.encode, text)\n"
    "  if eok then\n"
    "    if json.decode(s) ~= text then error('string round trip failed') end\n"
    "  elseif utf8.len(text) then\n"
    "    error('valid UTF-8 refused: ' .. tostring(s))\n"
    "  end\n"
    "end }\n";

static lua_host *host;

static void open_host(void)
{
    jet_log_init("fuzz_lua_json", JET_LOG_ERROR, false);
    char dir[] = "/tmp/jetsched-fuzz-lua-XXXXXX", path[64];
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/fuzzjson.lua", dir);
    FILE *f = fopen(path, "w");
    if (!f || fwrite(script, 1, sizeof script - 1, f) != sizeof script - 1 || fclose(f) != 0)
        abort();
    lua_host_options opt;
    lua_host_options_init(&opt);
    opt.dir = dir;
    opt.mem_limit_bytes = 32u << 20;
    jet_err err;
    if (lua_host_open(&opt, &th_api, &host, &err) != JET_OK || !lua_host_has(host, "fuzzjson"))
        abort();
    unlink(path); /* compiled: the directory is not read again */
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!host)
        open_host();
    if (size > 1 << 20)
        return 0;
    jet_task_ctx c;
    th_ctx_init(&c);
    jet_task t = th_task("fuzzjson", data, size);
    t.timeout_ms = 10000;
    if (lua_host_run(host, &t, &c) != JET_SUCCESS) {
        fprintf(stderr, "fuzz_lua_json: %s\n", c.error);
        abort();
    }
    th_ctx_free(&c);
    /* A fresh state per input: every malloc of the run is freed by its end,
     * so libFuzzer's leak check (run whenever they differ: ~20 ms) stays off. */
    lua_host_thread_exit();
    return 0;
}
