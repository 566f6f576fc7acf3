# The jetsched CLI (cli/) against real servers, a real schedulerd and agentd:
# every verb, --json output, error paths and exit codes, and a smoke test of
# scripts/quickstart (which starts its own servers in a temporary run dir).
foreach(t cli_task cli_schedule cli_dlq cli_errors cli_queues cli_limits cli_workflow)
  if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${t}.sh)
    jetsched_integration_test(${t} "--nats --pg" ${CMAKE_CURRENT_SOURCE_DIR}/${t}.sh)
    set_tests_properties(integration.${t} PROPERTIES TIMEOUT 420)
  endif()
endforeach()
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/cli_quickstart.sh)
  jetsched_integration_test(cli_quickstart "" ${CMAKE_CURRENT_SOURCE_DIR}/cli_quickstart.sh)
  set_tests_properties(integration.cli_quickstart PROPERTIES TIMEOUT 300)
endif()
# First contact (issue 21): quickstart as root from a directory user postgres
# cannot enter, and as an ordinary user whose PATH lacks /usr/sbin.
foreach(mode root-private user)
  jetsched_integration_test(quickstart_${mode} "" ${CMAKE_CURRENT_SOURCE_DIR}/quickstart_as.sh ${mode})
  set_tests_properties(integration.quickstart_${mode} PROPERTIES TIMEOUT 300)
endforeach()
