# Lua handler host (agentd/lua/, library agentd_luahost): the examples of scripts/lua/, the
# sandbox and its limits proven by the hostile scripts of tests/lua/, reload,
# recycling and concurrency, the workflow calls of ctx. Linked with the test host API of the plugin
# tests (tests/plugins/test_host.c). Included by tests/unit/CMakeLists.txt.
set(JETSCHED_LUA_TEST_ENV
  "JETSCHED_LUA_DIR=${CMAKE_SOURCE_DIR}/scripts/lua"
  "JETSCHED_LUA_TEST_DIR=${CMAKE_SOURCE_DIR}/tests/lua"
  "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp")

function(jetsched_lua_test name)
  jetsched_unit_test(${name} ${CMAKE_SOURCE_DIR}/tests/plugins/test_host.c)
  target_include_directories(${name} PRIVATE
    ${CMAKE_SOURCE_DIR}/tests/plugins ${CMAKE_SOURCE_DIR}/tests/lua)
  target_link_libraries(${name} PRIVATE agentd_luahost Threads::Threads m)
  set_tests_properties(unit.${name} PROPERTIES TIMEOUT 120 ENVIRONMENT "${JETSCHED_LUA_TEST_ENV}")
endfunction()

jetsched_lua_test(test_lua_host)
jetsched_lua_test(test_lua_sandbox)
jetsched_lua_test(test_lua_json)
jetsched_lua_test(test_lua_cstack)
jetsched_lua_test(test_lua_workflow)
