# schedulerd API integration tests (docs/API.md; real nats-server +
# PostgreSQL, real schedulerd and agentd processes): every verb, bad input,
# dlq.replay, the queue group, PostgreSQL down.
function(jetsched_api_test name)
  add_executable(${name} ${name}.c sched_api_support.c sched_support.c agent_support.c ${JETSCHED_HARNESS}/harness.c)
  target_include_directories(${name} PRIVATE ${JETSCHED_HARNESS} ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE jetsched)
  add_dependencies(${name} schedulerd agentd jetsched_cli jetsched_plugins)
  jetsched_integration_test(${name} "--nats --pg" $<TARGET_FILE:${name}>)
endfunction()
jetsched_api_test(sched_api_task)
jetsched_api_test(sched_api_schedule)
jetsched_api_test(sched_api_dlq)
jetsched_api_test(sched_api_cluster)
jetsched_api_test(sched_api_hostile)
jetsched_api_test(sched_api_bulk)
jetsched_api_test(sched_sweep)
jetsched_api_test(sched_queue_pause)
# the subject rule is tested directly too
target_sources(sched_sweep PRIVATE ${PROJECT_SOURCE_DIR}/scheduler/sweep.c)
target_include_directories(sched_sweep PRIVATE ${PROJECT_SOURCE_DIR}/scheduler)
# issue 20 item 2: the admission step (needs schedulerd for an API-submitted task, Lua for ctx.submit)
jetsched_api_test(agentd_admission)
target_sources(agentd_admission PRIVATE agentd_lua_util.c)
