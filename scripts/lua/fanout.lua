-- fanout: submits `count` follow-up tasks.
--
-- payload (JSON): { "handler": "hello", "count": 10, "queue": "default", "priority": "low" }
-- Only "handler" and "count" (1-1000) are required. Follow-up i gets the
-- payload "item <i>", the header X-Parent = this task's id, and the id
-- "<task id>-<i>": ids derived from the parent make a retry of the fan-out
-- idempotent (JetStream and PostgreSQL drop the duplicates).
-- result: {"submitted": count}
return {
  handle = function(task, ctx)
    local p = json.decode(task.payload)
    if type(p) ~= "table" or type(p.handler) ~= "string" then
      ctx.fail("payload must be a JSON object with a \"handler\"")
    end
    local n = math.tointeger(p.count)
    if not n or n < 1 or n > 1000 then
      ctx.fail("\"count\" must be an integer from 1 to 1000")
    end
    for i = 1, n do
      local id, err = ctx.submit {
        handler = p.handler,
        queue = p.queue,
        priority = p.priority,
        payload = "item " .. i,
        headers = { ["X-Parent"] = task.id },
        id = task.id .. "-" .. i,
      }
      if not id then error("follow-up " .. i .. ": " .. err) end
      ctx.progress(i * 100 // n)
    end
    return { submitted = n }
  end,
}
