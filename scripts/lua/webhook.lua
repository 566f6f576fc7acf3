-- webhook: turns an event into the JSON body of a webhook call.
--
-- payload (JSON):
--   { "event": "order.paid", "data": {...}, "endpoint": "billing" }
-- "event" is required; "data" is any JSON value; "endpoint", when given, is
-- the handler of a configured http (webhook) endpoint: the body is then
-- submitted to it as a follow-up task whose id derives from this task's id, so
-- a retry of this task does not deliver twice.
--
-- result: the body, e.g.
--   {"event":"order.paid","data":{...},"id":"<task id>","attempt":1,"sent_at":1700000000.123}
-- A payload that is not JSON, or has no event, fails permanently (a retry
-- cannot fix it); a failed submit is retried.

local function body_of(task, p)
  return json.encode({
    event = p.event,
    data = p.data == nil and json.null or p.data,
    id = task.id,
    attempt = task.attempt,
    sent_at = time.now(),
  }, { sort_keys = true })
end

return {
  handle = function(task, ctx)
    local ok, p = pcall(json.decode, task.payload)
    if not ok or type(p) ~= "table" then
      ctx.fail("payload must be a JSON object: " .. tostring(p))
    end
    if type(p.event) ~= "string" or p.event == "" then
      ctx.fail("payload has no \"event\" string")
    end
    local body = body_of(task, p)
    if p.endpoint then
      local id, err = ctx.submit {
        handler = p.endpoint,
        payload = body,
        id = task.id .. "-webhook",
        headers = { ["Content-Type"] = "application/json", ["X-Event"] = p.event },
      }
      if not id then error(err) end
      ctx.log("info", "event " .. p.event .. " queued for endpoint " .. p.endpoint .. " as " .. id)
    end
    return body
  end,
}
