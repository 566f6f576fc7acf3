-- Isolation probe: every task must see a fresh environment and fresh
-- file-level locals, whatever the previous task on the same state did.
local loads = (loads or 0) + 1     -- a global read at file level
counter = (counter or 0) + 1        -- a global written at file level
local file_local = { n = 0 }
file_local.n = file_local.n + 1

return {
  handle = function(task)
    seen = (seen or 0) + 1
    rawset(_ENV, "raw", (raw or 0) + 1)
    _G.via_g = (via_g or 0) + 1
    load("via_load = (via_load or 0) + 1")()
    return string.format("%d %d %d %d %d %d %d %s %s", loads, counter, file_local.n, seen, raw, via_g,
      via_load, tostring(from_load), tostring(string.leak))
  end,
}
