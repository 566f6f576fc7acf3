-- Exercises the task table, the ctx functions and the outcome mapping. The
-- payload names the mode.
local modes = {}

function modes.task(task)
  return {
    id = task.id, handler = task.handler, queue = task.queue, priority = task.priority,
    attempt = task.attempt, max_attempts = task.max_attempts, payload = task.payload,
    header = task.headers["X-Test"], deadline = task.deadline, timeout = task.timeout,
  }
end

function modes.ctx(task, ctx)
  ctx.progress(40, "almost half")
  ctx:progress(50)                       -- method syntax works too
  ctx.log("debug", "d-msg")
  ctx.log("warn", "w-msg")
  ctx:log("error", "e-msg")
  ctx.log("plain info")
  print("printed", 1, true)
  assert(ctx.cancelled() == false)
  assert(ctx.checkpoint() == nil)
  assert(ctx.checkpoint("cp-1") == true)
  assert(ctx.checkpoint() == "cp-1")
  local id = ctx.submit { handler = "hello", payload = "sub", queue = "other", priority = "high",
                          headers = { ["X-A"] = "1" }, id = "child-1" }
  assert(id == "child-1", id)
  local gen = ctx.submit { handler = "hello" }
  assert(type(gen) == "string" and #gen == 26, gen)
  return "ok"
end

function modes.submit_bad(task, ctx) ctx.submit { handler = "Not Valid" } end
function modes.log_bad(task, ctx) ctx.log("loud", "x") end
function modes.fail(task, ctx) ctx.fail("bad input") end
function modes.fail_caught(task, ctx) pcall(ctx.fail, "bad input, caught") return "ok" end
function modes.retry_in(task, ctx) ctx.retry_in(30, "rate limited") end
function modes.retry_in_default(task, ctx) ctx.retry_in(2.5) end
function modes.error() error("boom") end
function modes.error_table() error({ code = 1 }) end
function modes.error_tostring() error(setmetatable({}, { __tostring = function() return "custom" end })) end
function modes.error_level2() local function check(x) if not x then error("x is required", 2) end end check(nil) end
function modes.runtime() local t = nil return t.x end
function modes.bad_arg() return string.rep() end
function modes.return_false() return false end
function modes.return_true() return true end
function modes.return_number() return 42 end
function modes.return_table() return { a = 1, list = { 1, 2, 3 } } end
function modes.return_bad_table() return { f = print } end
function modes.return_function() return print end
function modes.cancel_cooperative(task, ctx)
  while not ctx.cancelled() do end
  return "stopped"
end
function modes.wait_go(task, ctx)          -- waits until the test stores "go" as checkpoint
  ctx.progress(1)
  while ctx.checkpoint() ~= "go" do end
  return "v1"
end

function modes.progress_long_note(task, ctx) ctx.progress(1, string.rep("n", 1025)) end
return { handle = function(task, ctx) return modes[task.payload](task, ctx) end }
