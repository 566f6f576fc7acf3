-- batch_report: a long task that processes items in steps, reports progress,
-- and saves a checkpoint after each step, so that a retry (on this agent or
-- any other) resumes after the last completed step instead of starting over.
--
-- payload (JSON):
--   { "items": 1000, "step": 100 }            required: items >= 1, step >= 1
--   "fail_after_step": k                       optional, for demonstrations and
--                                               tests: the first attempt fails
--                                               (retryable) right after step k
-- The "report" is the sum of the squares of 1..items, computed step by step.
-- result (JSON): {"items":..,"steps":..,"sum_squares":..,"resumed_from":<first
-- step this attempt ran>,"attempt":..}

local function load_state(ctx)
  local saved = ctx.checkpoint()
  if saved then
    local ok, st = pcall(json.decode, saved)
    if ok and type(st) == "table" and math.tointeger(st.next_step) then
      return st
    end
    ctx.log("warn", "ignoring an unreadable checkpoint")
  end
  return { next_step = 1, sum = 0 }
end

return {
  handle = function(task, ctx)
    local p = json.decode(task.payload)
    local items, step = math.tointeger(p.items), math.tointeger(p.step)
    if not items or items < 1 or not step or step < 1 then
      ctx.fail("payload needs integer \"items\" >= 1 and \"step\" >= 1")
    end
    local steps = (items + step - 1) // step
    local st = load_state(ctx)
    local first = st.next_step
    if first > 1 then
      ctx.log("info", "resuming at step " .. first .. " of " .. steps)
    end
    for s = first, steps do
      if ctx.cancelled() then
        error("cancelled at step " .. s)
      end
      local lo, hi = (s - 1) * step + 1, math.min(s * step, items)
      local sum = 0
      for i = lo, hi do sum = sum + i * i end
      st.sum = st.sum + sum
      st.next_step = s + 1
      local ok, err = ctx.checkpoint(json.encode(st))
      if not ok then ctx.log("warn", err) end
      ctx.log("info", "step " .. s .. " done (items " .. lo .. "-" .. hi .. ")")
      ctx.progress(s * 100 // steps, "step " .. s .. "/" .. steps)
      if task.attempt == 1 and p.fail_after_step == s then
        error("forced failure after step " .. s)
      end
    end
    return {
      items = items, steps = steps, sum_squares = st.sum,
      resumed_from = first, attempt = task.attempt,
    }
  end,
}
