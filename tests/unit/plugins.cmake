# Native plugin host (agentd/plugin_host.c) and the built-in plugins
# (agentd/plugins/): loader, exec, http, and the out-of-tree example built
# against the installed header. Test fixtures live in tests/plugins/.
set(JETSCHED_TEST_PLUGIN_SRC ${CMAKE_SOURCE_DIR}/tests/plugins)
set(JETSCHED_TEST_PLUGIN_DIR ${CMAKE_BINARY_DIR}/tests/plugins)

# Broken / odd plugins for the loader tests: one source, one variant each.
set(JETSCHED_TEST_FIXTURES)
foreach(fx bad_major bad_minor no_entry null_entry small_struct null_handle init_fail
           bad_handler dup_echo dup_self bad_outcome bad_name echo_name old_minor)
  string(TOUPPER ${fx} FX)
  add_library(jetsched_fixture_${fx} MODULE ${JETSCHED_TEST_PLUGIN_SRC}/fixture.c)
  target_compile_definitions(jetsched_fixture_${fx} PRIVATE FIXTURE_${FX})
  target_include_directories(jetsched_fixture_${fx} PRIVATE ${CMAKE_SOURCE_DIR}/agentd/include)
  set_target_properties(jetsched_fixture_${fx} PROPERTIES OUTPUT_NAME ${fx} PREFIX ""
    LIBRARY_OUTPUT_DIRECTORY ${JETSCHED_TEST_PLUGIN_DIR} C_VISIBILITY_PRESET hidden)
  list(APPEND JETSCHED_TEST_FIXTURES jetsched_fixture_${fx})
endforeach()
add_library(jetsched_fixture_cfg MODULE ${JETSCHED_TEST_PLUGIN_SRC}/cfg_plugin.c)
target_include_directories(jetsched_fixture_cfg PRIVATE ${CMAKE_SOURCE_DIR}/agentd/include)
target_link_libraries(jetsched_fixture_cfg PRIVATE PkgConfig::JANSSON)
set_target_properties(jetsched_fixture_cfg PROPERTIES OUTPUT_NAME cfg PREFIX ""
  LIBRARY_OUTPUT_DIRECTORY ${JETSCHED_TEST_PLUGIN_DIR} C_VISIBILITY_PRESET hidden)
list(APPEND JETSCHED_TEST_FIXTURES jetsched_fixture_cfg)

set(JETSCHED_PLUGIN_TEST_ENV
  "JETSCHED_PLUGIN_DIR=${CMAKE_BINARY_DIR}/plugins"
  "JETSCHED_TEST_PLUGIN_DIR=${JETSCHED_TEST_PLUGIN_DIR}"
  "JETSCHED_EXAMPLE_DIR=${CMAKE_BINARY_DIR}/tests/example-plugin"
  "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp")

# A cmocka test linked with the plugin host and the test host API.
function(jetsched_plugin_test name)
  jetsched_unit_test(${name} ${CMAKE_SOURCE_DIR}/agentd/plugin_host.c ${JETSCHED_TEST_PLUGIN_SRC}/test_host.c)
  target_include_directories(${name} PRIVATE
    ${CMAKE_SOURCE_DIR}/agentd ${CMAKE_SOURCE_DIR}/agentd/include ${JETSCHED_TEST_PLUGIN_SRC})
  target_link_libraries(${name} PRIVATE ${CMAKE_DL_LIBS} Threads::Threads)
  add_dependencies(${name} jetsched_plugins ${JETSCHED_TEST_FIXTURES})
  set_tests_properties(unit.${name} PROPERTIES TIMEOUT 90 ENVIRONMENT "${JETSCHED_PLUGIN_TEST_ENV}")
endfunction()

jetsched_plugin_test(test_plugin_host)
jetsched_plugin_test(test_plugin_exec)
target_link_libraries(test_plugin_exec PRIVATE jetsched_test_procstat)
jetsched_plugin_test(test_plugin_http)
jetsched_plugin_test(test_plugin_example)

# The example plugin, built out of tree against the installed header: install
# the project into a scratch prefix, then run examples/plugin/Makefile.
add_test(NAME unit.plugin_example_build
  COMMAND sh ${JETSCHED_TEST_PLUGIN_SRC}/build_example.sh
          ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/tests/example-plugin)
set_tests_properties(unit.plugin_example_build PROPERTIES TIMEOUT 120
  FIXTURES_SETUP jetsched_plugin_example)
set_tests_properties(unit.test_plugin_example PROPERTIES FIXTURES_REQUIRED jetsched_plugin_example)
