-- Hostile: tries to leave the sandbox. The payload names the probe; the test
-- expects an error with a clear message (or the value given in the comment).
local probes = {}

probes.io_open = function() return io.open("/etc/passwd"):read("a") end
probes.io_popen = function() return io.popen("id") end
probes.os_execute = function() return os.execute("touch /tmp/jetsched-lua-escaped") end
probes.os_getenv = function() return os.getenv("HOME") end
probes.os_exit = function() os.exit(1) end
probes.os_time = function() return tostring(os.time() > 1600000000 and os.clock() >= 0) end -- "true"
probes.os_date = function() return os.date("!%Y", 0) end                                  -- "1970"
probes.require = function() return require("os") end
probes.package = function() return package.loadlib("libc.so.6", "system") end
probes.debug_getinfo = function() return debug.getinfo(1) end
probes.debug_sethook = function() debug.sethook() end
probes.dofile = function() return dofile("/etc/passwd") end
probes.loadfile = function() return loadfile("/etc/passwd") end
probes.string_dump = function() return string.dump(function() return 1 end) end
probes.load_binary = function()
  return assert(load("\27Lua\84\0\25\147\13\10\26\10\4\8\8\120\86\0\0\0\0\0\0\0\0\0\0\0\40\119\64"))
end
probes.load_mode_b = function() return assert(load("return 1", "chunk", "b")) end
probes.load_text = function() return load("return 1 + 1")() end                            -- 2
probes.load_global = function() load("from_load = 'set'")() return from_load end          -- "set"
probes.string_metatable = function() getmetatable("").__index = {} end
probes.string_write = function() string.upper = nil end
probes.string_rawset = function() rawset(string, "upper", nil) end
probes.math_write = function() math.pi = 3 end
probes.json_write = function() json.encode = nil end
probes.pairs_string = function()                                                         -- "true nil"
  local n = 0
  for _ in pairs(string) do n = n + 1 end
  local _, state = pairs(string)
  return tostring(n > 10) .. " " .. tostring(state)
end
probes.gc_metamethod = function() return setmetatable({}, { __gc = function() end }) end
probes.collect_stop = function() collectgarbage("stop") end
probes.collect_count = function() return type(collectgarbage("count")) end              -- "number"
probes.env_metatable = function() return tostring(getmetatable(_ENV)) end               -- "false"
probes.env_detach = function() setmetatable(_ENV, nil) end
probes.coroutine_ok = function()                                                          -- "1"
  return coroutine.wrap(function() coroutine.yield(1) end)()
end
probes.xpcall_ok = function()                                                             -- "false handled: sandbox.lua:N: x 3"
  local ok, e = xpcall(function() error("x") end, function(m) return "handled: " .. m end)
  local ok2, a, b = xpcall(function(p, q) return p, q end, print, 1, 2)
  return tostring(ok) .. " " .. e .. " " .. tostring(ok2 and a + b)
end
probes.xpcall_yield = function()                                                          -- "7"
  local co = coroutine.wrap(function()
    local ok, v = xpcall(function() return coroutine.yield(3) + 4 end, print)
    return v
  end)
  co()
  return tostring(co(3))
end
probes.wrap_error = function()                                                            -- error "sandbox.lua:N: inner"
  coroutine.wrap(function() error("inner") end)()
end
probes.rep_empty = function()                                                             -- "0 0 3"
  return #string.rep("", math.maxinteger) .. " " .. #(""):rep(1 << 62, "") .. " " .. #string.rep("", 4, "-")
end
probes.table_ops = function()                                                             -- "a b c|b c|c b|ab|x y z|1 2 3"
  local function ops(t)
    table.insert(t, "a") table.insert(t, "c") table.insert(t, 2, "b")
    local r = { table.concat(t, " ") }
    table.remove(t, 1)
    r[#r + 1] = table.concat(t, " ")
    table.sort(t, function(x, y) return x > y end)
    r[#r + 1] = table.concat(t, " ")
    return table.concat(r, "|")
  end
  local plain = ops({})
  local store = {}
  local proxied = ops(setmetatable({}, { __index = store, __newindex = store, __len = function() return #store end }))
  local m = table.move({ "x", "y", "z" }, 1, 3, 1, setmetatable({}, { __newindex = rawset }))
  local s = {}
  for i = 3, 1, -1 do table.insert(s, 1, i) end
  assert(plain == proxied, proxied)
  return plain .. "|" .. table.concat({ "a", "b" }) .. "|" .. table.concat(m, " ") .. "|" .. table.concat(s, " ")
end
-- CVE-2022-33099 (Lua 5.4.4): C stack overflow while handling an error
probes.cstack_error = function()
  local function loop() assert(pcall(loop)) end
  local _, msg = xpcall(loop, loop)
  return "survived"
end
-- Deep nesting of coroutine.close (5.4.4 bug)
probes.coroutine_close_nest = function()
  local co
  for _ = 1, 100000 do
    local prev = co
    co = coroutine.create(function() local x <close> = setmetatable({}, { __close = function() if prev then coroutine.close(prev) end end }) coroutine.yield() end)
    coroutine.resume(co)
  end
  coroutine.close(co)
  return "survived"
end
-- C-stack depth probes (the test runs them on a 1 MiB thread stack, like agentd's workers)
probes.deep_pcall = function()
  local function f(n) if n == 0 then return "bottom" end local _, v = pcall(f, n - 1) return v end
  return f(10000)
end
probes.deep_syntax = function()
  local f, err = load("return " .. string.rep("(", 5000) .. "1" .. string.rep(")", 5000))
  return tostring(err)
end
probes.deep_json = function()
  local ok, err = pcall(json.decode, string.rep("[", 5000) .. string.rep("]", 5000))
  return tostring(err)
end
probes.deep_tostring = function()
  local mt = {}
  mt.__tostring = function(t) return tostring(setmetatable({}, mt)) end
  return tostring(setmetatable({}, mt))
end
probes.deep_concat = function()
  local mt = {}
  mt.__concat = function(a, b) return setmetatable({}, mt) .. "x" end
  return setmetatable({}, mt) .. "x"
end
probes.deep_recursion = function()
  local function f(n) return 1 + f(n + 1) end
  return f(1)
end
probes.pattern_deep = function() return string.find(string.rep("a", 10000), string.rep("a?", 10000)) end

return { handle = function(task) return probes[task.payload]() end }
