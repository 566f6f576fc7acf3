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

-- One 10 MB JSON text (700,000 small objects): its decoded tables need far
-- more than the cap, and all of that memory must be Lua's, counted (a
-- C-side tree took agentd from 20 to 236 MB in one task).
local function big_json_text()
  return "[" .. string.rep('{"k":[1,2,3]},', 700000) .. "{}]"
end
function modes.json_text() return #json.decode(big_json_text()) end
function modes.json_text_pcall()
  pcall(json.decode, big_json_text())
  return "survived"
end
-- Encoding: a table of 200,000 strings of 100 bytes (20 MB of text).
function modes.json_encode_big()
  local t = {}
  for i = 1, 200000 do t[i] = string.rep("e", 100) end
  return #json.encode(t)
end

-- Within the limit: a few MiB is fine.
function modes.ok()
  local s = string.rep("z", 4 << 20)
  return tostring(#s)
end

return { handle = function(task) return modes[task.payload]() end }
