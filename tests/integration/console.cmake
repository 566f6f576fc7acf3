# The web console (web/, issue 16) in a real headless Chromium over WebDriver
# (Debian's chromium, chromium-driver, python3-selenium), against real
# nats-server, PostgreSQL, schedulerd (web.listen) and agentd. Screenshots go
# to <build>/web-console/.
find_program(JETSCHED_SYSTEM_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT JETSCHED_SYSTEM_PYTHON3)
  set(JETSCHED_SYSTEM_PYTHON3 python3)
endif()
jetsched_integration_test(web_console "--nats --pg"
  ${JETSCHED_SYSTEM_PYTHON3} ${CMAKE_SOURCE_DIR}/tests/web/console_browser.py)
set_tests_properties(integration.web_console PROPERTIES TIMEOUT 180)
# The console's workflow pages (issue 18): the DAG, live states, cancel.
jetsched_integration_test(web_console_workflows "--nats --pg"
  ${JETSCHED_SYSTEM_PYTHON3} ${CMAKE_SOURCE_DIR}/tests/web/console_workflows.py)
set_tests_properties(integration.web_console_workflows PROPERTIES TIMEOUT 180)
