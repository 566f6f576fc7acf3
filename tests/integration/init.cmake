# `jetsched init` (common/jsobjects.c, cli/cmd_init.c) against a real
# nats-server: one test program, one scenario per ctest test
# (integration.init_<scenario>); see tests/integration/init_test.c.
add_executable(init_test ${CMAKE_CURRENT_SOURCE_DIR}/init_test.c ${JETSCHED_HARNESS}/harness.c)
target_include_directories(init_test PRIVATE ${JETSCHED_HARNESS})
target_link_libraries(init_test PRIVATE jetsched)
add_dependencies(init_test jetsched_cli)
foreach(scenario twice prefix conflict_retention conflict_duplicates conflict_consumer conflict_overlap
         nats_down race)
  jetsched_integration_test(init_${scenario} "--nats" $<TARGET_FILE:init_test> ${scenario})
  set_tests_properties(integration.init_${scenario} PROPERTIES TIMEOUT 120)
endforeach()
