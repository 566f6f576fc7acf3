-- The workflow calls of ctx (plugin ABI 1.2) for tests/unit/test_lua_workflow.c:
-- the payload names the case; each returns what the test checks.
local cases = {}

function cases.info(ctx)
  return json.encode({ workflow = ctx.workflow or json.null })
end

function cases.add(ctx)
  local a = assert(ctx.workflow_add{ name = "c1", handler = "echo", payload = "x", priority = "high",
                                     headers = { ["X-A"] = "1" }, max_attempts = 3, timeout = "30s" })
  local b = assert(ctx:workflow_add{ name = "fan-in", handler = "merge", depends_on = { "c1", "pre" },
                                     allow_failure = true })
  return a .. " " .. b
end

function cases.add_error(ctx)
  local id, err = ctx.workflow_add{ name = "c1", handler = "echo" }
  return json.encode({ id = id or json.null, err = err }, { sort_keys = true })
end

function cases.parents(ctx)
  local r = assert(ctx.parent_results())
  local out = {}
  for node, p in pairs(r) do
    out[#out + 1] = node .. "=" .. p.status .. ":" .. tostring(p.result) .. ":" .. p.task_id
  end
  table.sort(out)
  return table.concat(out, ",")
end

function cases.parents_error(ctx)
  local r, err = ctx.parent_results()
  return json.encode({ r = r or json.null, err = err }, { sort_keys = true })
end

cases.no_name = function(ctx) return ctx.workflow_add{ handler = "echo" } end
cases.no_handler = function(ctx) return ctx.workflow_add{ name = "x" } end
cases.unknown_field = function(ctx) return ctx.workflow_add{ name = "x", handler = "echo", delay = "1m" } end
cases.bad_dep = function(ctx) return ctx.workflow_add{ name = "x", handler = "echo", depends_on = { 1 } } end
cases.bad_allow = function(ctx) return ctx.workflow_add{ name = "x", handler = "echo", allow_failure = "yes" } end
cases.binary = function(ctx) return ctx.workflow_add{ name = "x", handler = "echo", payload = "\255" } end

return {
  handle = function(task, ctx)
    return cases[task.payload](ctx)
  end,
}
