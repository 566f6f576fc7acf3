# Cron/schedule-spec parser and next-fire computation (scheduler/cron.c,
# scheduler/tz.c): cmocka unit tests plus a differential test against
# python3-croniter (tests/cron/). Included by tests/unit/CMakeLists.txt.
set(JETSCHED_CRON_SOURCES ${CMAKE_SOURCE_DIR}/scheduler/cron.c ${CMAKE_SOURCE_DIR}/scheduler/tz.c)

jetsched_unit_test(test_cron ${JETSCHED_CRON_SOURCES})
target_include_directories(test_cron PRIVATE ${CMAKE_SOURCE_DIR}/scheduler)

add_executable(cron_driver ${CMAKE_SOURCE_DIR}/tests/cron/cron_driver.c ${JETSCHED_CRON_SOURCES})
target_include_directories(cron_driver PRIVATE ${CMAKE_SOURCE_DIR}/scheduler)
target_link_libraries(cron_driver PRIVATE jetsched)

# Debian's python3 (croniter, pytz and dateutil are Debian packages: the
# python3-croniter python3-tz python3-dateutil packages), not a python3 that
# an unrelated PATH entry (pyenv, venv) may put first.
find_program(JETSCHED_DEBIAN_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT JETSCHED_DEBIAN_PYTHON3)
  set(JETSCHED_DEBIAN_PYTHON3 python3)
endif()
# 3000 expressions x 4 start instants x 5 fire times: ~60,000 comparisons,
# 10-30 s on 2 cores (croniter, on the Python side, is most of it). More by
# hand: croniter_diff.py --exprs 20000 --seed N.
if(JETSCHED_SANITIZE)
  set(JETSCHED_CRON_DIFF_EXPRS 3000)
else()
  set(JETSCHED_CRON_DIFF_EXPRS 4000)
endif()
add_test(NAME cron.croniter_diff
  COMMAND ${JETSCHED_DEBIAN_PYTHON3} ${CMAKE_SOURCE_DIR}/tests/cron/croniter_diff.py
          --driver $<TARGET_FILE:cron_driver> --exprs ${JETSCHED_CRON_DIFF_EXPRS})
set_tests_properties(cron.croniter_diff PROPERTIES TIMEOUT 180)
add_test(NAME cron.bench COMMAND cron_driver --bench 200000)
set_tests_properties(cron.bench PROPERTIES TIMEOUT 60)
