-- hello: greets whoever the payload names ("world" when it is empty).
--
--   jetsched task submit --handler hello --payload Ada   ->  result "hello, Ada"
return {
  handle = function(task, ctx)
    local name = task.payload ~= "" and task.payload or "world"
    ctx.log("info", "greeting " .. name .. " (attempt " .. task.attempt .. ")")
    return "hello, " .. name
  end,
}
