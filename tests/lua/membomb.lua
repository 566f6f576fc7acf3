-- Hostile: memory bombs. The payload names the mode. Each must be stopped by
-- the per-state allocator cap; "survived" would mean a pcall swallowed it.
local modes = {}

function modes.rep() return #string.rep("x", 1 << 30) end

function modes.rep_pcall()
  pcall(string.rep, "x", 1 << 30)
  return "survived"
end

function modes.rep_loop()
  while true do pcall(string.rep, "x", 1 << 28) end
end

function modes.table()
  local t = {}
  while true do t[#t + 1] = { #t } end
end

function modes.table_pcall()
  pcall(function()
    local t = {}
    while true do t[#t + 1] = { #t } end
  end)
  return "survived"
end

function modes.concat()
  local s = "0123456789abcdef"
  while true do s = s .. s end
end

function modes.json()
  local t = {}
  for i = 1, 1000 do t[i] = string.rep("y", 1000) end
  local big = json.encode(t)
  local all = {}
  while true do all[#all + 1] = json.decode(big) end
end

-- Within the limit: a few MiB is fine.
function modes.ok()
  local s = string.rep("z", 4 << 20)
  return tostring(#s)
end

return { handle = function(task) return modes[task.payload]() end }
