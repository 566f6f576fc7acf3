# PostgreSQL: migrations (jetsched migrate), the history writer and retention,
# against the real throwaway PostgreSQL of tests/harness/with-servers --pg.
function(jetsched_pg_c_test name)
  jetsched_integration_c_test(${name} "--pg")
  target_sources(${name} PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/pg_util.c)
endfunction()
jetsched_integration_test(pg_migrate "--pg" ${CMAKE_CURRENT_SOURCE_DIR}/pg_migrate.sh)
jetsched_pg_c_test(pg_history)
jetsched_pg_c_test(pg_history_outage)
jetsched_pg_c_test(pg_history_hostile)
jetsched_pg_c_test(pg_history_rules)
jetsched_pg_c_test(pg_retention)
jetsched_integration_test(pg_withdraw_lock "--pg" ${CMAKE_CURRENT_SOURCE_DIR}/pg_withdraw_lock.sh)
