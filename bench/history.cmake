# The history writer benchmark: bench/history.sh runs history_bench and a
# pgbench multi-row INSERT baseline against one PostgreSQL in the same run.
add_executable(history_bench ${CMAKE_CURRENT_SOURCE_DIR}/history_bench.c)
target_link_libraries(history_bench PRIVATE jetsched)
