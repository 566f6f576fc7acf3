-- Hostile: infinite loops in every place a script could hide one. The
-- payload names the mode. Each must be stopped at the task's time limit; the
-- modes returning "escaped" prove that pcall/xpcall/coroutines/__close did
-- not swallow the stop.
local modes = {}

function modes.plain() while true do end end

function modes.pcall()
  pcall(function() while true do end end)
  return "escaped"
end

function modes.pcall_loop()
  while true do pcall(function() while true do end end) end
end

function modes.error_loop()
  while true do pcall(error, "x") end
end

function modes.xpcall_handler()
  xpcall(function() while true do end end, function() while true do end end)
  return "escaped"
end

function modes.coroutine()
  local co = coroutine.wrap(function() while true do end end)
  pcall(co)
  return "escaped"
end

function modes.coroutine_loop()
  while true do
    pcall(coroutine.wrap(function() while true do end end))
  end
end

function modes.close()
  do
    local x <close> = setmetatable({}, { __close = function() while true do end end })
  end
  return "escaped"
end

function modes.load()
  pcall(load("while true do end"))
  return "escaped"
end

function modes.sort()
  local t = {}
  for i = 1, 100 do t[i] = 101 - i end
  pcall(table.sort, t, function() while true do end end)
  return "escaped"
end

function modes.gsub()
  pcall(string.gsub, "aaa", "a", function() while true do end end)
  return "escaped"
end

-- The coroutine is killed where it cannot yield (inside table.sort), which
-- leaves Lua's hooks off in it: closing it must not run its __close unstopped.
function modes.coroutine_close()
  local co = coroutine.create(function()
    local x <close> = setmetatable({}, { __close = function() while true do end end })
    table.sort({ 3, 2, 1 }, function() while true do end end)
  end)
  coroutine.resume(co)
  coroutine.close(co)
  return "escaped"
end

function modes.wrap_close()
  pcall(coroutine.wrap(function()
    local x <close> = setmetatable({}, { __close = function() while true do end end })
    while true do end
  end))
  return "escaped"
end

function modes.xpcall_rethrow()
  while true do xpcall(function() while true do end end, function(e) error(e) end) end
end

-- C library loops that run no Lua code, made to look huge through metamethods
-- answered by C functions (or a huge range of nils): the sandbox runs these
-- in Lua so that the hook can stop them.
local huge = setmetatable({}, { __len = function() return math.maxinteger - 1 end, __index = rawlen,
                                __newindex = rawequal })
function modes.table_insert() table.insert(huge, 1, "x") return "escaped" end
function modes.table_remove() table.remove(huge, 1) return "escaped" end
function modes.table_sort() table.sort(huge) return "escaped" end
function modes.table_concat() return table.concat(setmetatable({}, { __index = rawlen }), "", 1, math.maxinteger) end
function modes.table_move() table.move({}, 1, math.maxinteger - 1, 2) return "escaped" end
function modes.table_move_float() table.move({}, 1.0, 2.0 ^ 62, 2) return "escaped" end

function modes.tailcall()
  local function f() return f() end
  return f()
end

return { handle = function(task) return modes[task.payload]() end }
