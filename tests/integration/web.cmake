# schedulerd's web listener (web.listen): the REST API, its authentication,
# the console's static files, the live events over SSE and TLS, with real
# nats-server + PostgreSQL, schedulerd and agentd processes, over HTTP with libcurl.
function(jetsched_web_test name)
  add_executable(${name} ${name}.c web_support.c sched_api_support.c sched_support.c agent_support.c
                 ${JETSCHED_HARNESS}/harness.c)
  target_include_directories(${name} PRIVATE ${JETSCHED_HARNESS} ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE jetsched PkgConfig::CURL)
  add_dependencies(${name} schedulerd agentd jetsched_cli jetsched_plugins)
  jetsched_integration_test(${name} "--nats --pg" $<TARGET_FILE:${name}>)
endfunction()
jetsched_web_test(web_api)
jetsched_web_test(web_sse)
jetsched_web_test(web_tls)
jetsched_web_test(web_hostile)
# The console's migrations as an upgrade of a schema holding 1,000,000 tasks.
jetsched_integration_test(web_upgrade "--pg" ${CMAKE_CURRENT_SOURCE_DIR}/web_upgrade.sh)
