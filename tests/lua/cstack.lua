-- Hostile: C-stack exhaustion through Lua 5.4.4 (lua.org/bugs.html) and its
-- relatives, for tests/unit/test_lua_cstack.c (run on a 1 MiB thread stack,
-- like agentd's workers) and agentd_lua_hostile. The payload is "<mode> [n]"
-- (n defaults to 20000). Each mode must end in an error or a result, never
-- in a crash of the process.
local modes = {}

-- n coroutines, each suspended holding a to-be-closed variable whose __close
-- calls on_close(previous coroutine); then the last one is closed.
local function chain(n, on_close)
  local co
  for _ = 1, n do
    local prev = co
    co = coroutine.create(function()
      local x <close> = setmetatable({}, { __close = function() on_close(prev) end })
      coroutine.yield()
    end)
    coroutine.resume(co)
  end
  return tostring(coroutine.close(co))
end
local function close(co) if co then coroutine.close(co) end end
local function gsub_deep(s) return (string.gsub(s, ".", gsub_deep)) end

-- 5.4.4 bug "C-stack overflow with deep nesting of coroutine.close": closing
-- the last recurses in C without counting C calls.
function modes.close_nest(n) return chain(n, close) end
-- __close handlers that resume another coroutine which closes the previous.
function modes.close_resume(n)
  return chain(n, function(prev) coroutine.resume(coroutine.create(function() close(prev) end)) end)
end
-- ... whose __close raises after closing the previous (errors while closing).
function modes.close_error_nest(n) return chain(n, function(prev) close(prev) error("close error") end) end
-- The worst case for the guard: every __close also recurses ~200 C levels
-- (string.gsub callbacks: the largest C frames of the standard library)
-- before or after closing the previous coroutine.
function modes.close_gsub_before(n) return chain(n, function(prev) pcall(gsub_deep, "x") close(prev) end) end
function modes.close_gsub_after(n) return chain(n, function(prev) close(prev) pcall(gsub_deep, "x") end) end

-- The same chain through coroutine.wrap: each wrapped coroutine raises when
-- resumed, and closing its variables (on the error path) calls the previous.
function modes.wrap_nest(n)
  local f
  for _ = 1, n do
    local prev = f
    f = coroutine.wrap(function()
      local x <close> = setmetatable({}, { __close = function() if prev then pcall(prev) end end })
      coroutine.yield()
      error("boom")
    end)
    f()
  end
  return tostring(pcall(f))
end

-- CVE-2022-33099: C stack overflow while handling an error.
function modes.error_handling(n)
  local function loop() assert(pcall(loop)) end
  local ok = xpcall(loop, loop)
  return tostring(ok)
end

-- Error objects whose __tostring recurses (the host's message handler calls it).
function modes.tostring_error(n)
  local mt = {}
  mt.__tostring = function(e) error(setmetatable({}, mt)) end
  error(setmetatable({}, mt))
end

-- Resume chains: coroutine A resumes B resumes C ...
function modes.resume_nest(n)
  local function nest(k) if k == 0 then return "bottom" end
    local co = coroutine.create(nest) local ok, v = coroutine.resume(co, k - 1) return v end
  return tostring(nest(n))
end

-- Deeply nested pcall inside __close of a closing coroutine.
function modes.close_pcall(n)
  local function f(k) if k == 0 then return "bottom" end local _, v = pcall(f, k - 1) return v end
  return chain(1, function() f(n) end)
end

-- gsub/format/sort with callbacks that recurse through C.
function modes.gsub_nest() return gsub_deep("x") end
function modes.format_nest(n)
  local mt = {}
  mt.__tostring = function() return string.format("%s", setmetatable({}, mt)) end
  return string.format("%s", setmetatable({}, mt))
end
function modes.sort_nest(n)
  local function s(k) if k == 0 then return end table.sort({ 2, 1 }, function(a, b) s(k - 1) return a < b end) end
  s(n)
  return "ok"
end

return { handle = function(task)
  local mode, n = task.payload:match("^(%S+)%s*(%d*)$")
  return modes[mode](tonumber(n) or 20000)
end }
