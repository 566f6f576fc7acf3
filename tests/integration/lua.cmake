# Lua handlers through real agentd processes (real nats-server + PostgreSQL):
# the shipped examples, checkpoints across agents, hostile scripts, SIGHUP
# reload. Uses jetsched_agent_test() of agentd.cmake (included before this
# file: the areas are included in name order).
function(jetsched_lua_agent_test name)
  jetsched_agent_test(${name})
  target_sources(${name} PRIVATE agentd_lua_util.c)
endfunction()
jetsched_lua_agent_test(agentd_lua)
jetsched_lua_agent_test(agentd_lua_resume)
jetsched_lua_agent_test(agentd_lua_hostile)
jetsched_lua_agent_test(agentd_lua_reload)
