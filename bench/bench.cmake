# The end-to-end benchmark (bench/run): jetbench measures the raw JetStream
# ceiling with libnats and jetsched end to end through agentd, in one run.
add_executable(jetbench
  ${CMAKE_CURRENT_SOURCE_DIR}/jetbench.c
  ${CMAKE_CURRENT_SOURCE_DIR}/jetbench_js.c
  ${CMAKE_CURRENT_SOURCE_DIR}/jetbench_agent.c
  ${CMAKE_CURRENT_SOURCE_DIR}/jetbench_cron.c
  ${CMAKE_CURRENT_SOURCE_DIR}/jetbench_api.c
  ${CMAKE_SOURCE_DIR}/tests/harness/harness.c)
target_include_directories(jetbench PRIVATE ${CMAKE_SOURCE_DIR}/tests/harness)
target_link_libraries(jetbench PRIVATE jetsched PkgConfig::NATS PkgConfig::PQ PkgConfig::JANSSON Threads::Threads m)
