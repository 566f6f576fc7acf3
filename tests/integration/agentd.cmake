# agentd integration tests (real nats-server + PostgreSQL).
function(jetsched_agent_test name)
  add_executable(${name} ${name}.c agent_support.c ${JETSCHED_HARNESS}/harness.c)
  target_include_directories(${name} PRIVATE ${JETSCHED_HARNESS} ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE jetsched)
  add_dependencies(${name} agentd jetsched_cli)
  jetsched_integration_test(${name} "--nats --pg" $<TARGET_FILE:${name}>)
endfunction()
jetsched_agent_test(agentd_outcomes)
