# cmake/packaging.cmake: the install layout beyond the targets' own install()
# rules, and the Debian package (CPack DEB). Included from the top-level
# CMakeLists.txt. Layout under the prefix (the .deb uses /usr, and /etc for
# etc/):
#   bin/                      agentd schedulerd jetsched         (targets)
#   etc/jetsched/             agentd.conf schedulerd.conf        (top level)
#   include/jetsched/         plugin.h                           (agentd/)
#   lib/jetsched/plugins/     noop.so echo.so exec.so http.so    (agentd/plugins/)
#   lib/systemd/system/       agentd.service schedulerd.service  (here)
#   share/jetsched/sql/       migrations                         (top level)
#   share/jetsched/lua/       example Lua handlers               (here)
#   share/jetsched/web/       the web console (web.root)         (here)
#   share/doc/jetsched/       README, OPERATIONS and friends     (here)
#   share/man/man1/           jetsched.1                         (cli/)
# The units name /usr/bin and /etc/jetsched: they are meant for prefix /usr.

install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/agentd.service ${PROJECT_SOURCE_DIR}/deploy/systemd/schedulerd.service
        DESTINATION lib/systemd/system)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/scripts/lua/ DESTINATION ${CMAKE_INSTALL_DATADIR}/jetsched/lua
        FILES_MATCHING PATTERN "*.lua")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/web/ DESTINATION ${CMAKE_INSTALL_DATADIR}/jetsched/web
        FILES_MATCHING PATTERN "*.html" PATTERN "*.css" PATTERN "*.js" PATTERN "*.svg")
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/OPERATIONS.md
        ${PROJECT_SOURCE_DIR}/docs/ARCHITECTURE.md ${PROJECT_SOURCE_DIR}/docs/PLUGINS.md ${PROJECT_SOURCE_DIR}/docs/LUA.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# ---- Debian package: `cpack -G DEB` in a build directory ----
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME jetsched)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "jetsched")
set(CPACK_PACKAGE_CONTACT "jetsched maintainers <jetsched@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "distributed task scheduler and agent on NATS JetStream and PostgreSQL")
set(CPACK_PACKAGE_DESCRIPTION
    "agentd runs tasks pulled from NATS JetStream in native plugins and Lua scripts and records every attempt in\nPostgreSQL; schedulerd fires cron schedules and delayed tasks under a fenced leader election; jetsched is the\ncommand-line tool. systemd units are installed but neither enabled nor started.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_NAME jetsched)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The runtime libraries of what the binaries and plugins link (readelf -d
# NEEDED, mapped with dpkg -S on Debian 12), and adduser for the postinst.
# Listed rather than computed by dpkg-shlibdeps so that a sanitizer build
# (libasan, libubsan) packages with the same dependencies.
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libc6 (>= 2.34), libnats3.4 (>= 3.4.1), libpq5, libconfig9, libjansson4, liblua5.4-0, libmicrohttpd12, libcurl4, libsystemd0, adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "nats-server, postgresql")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/deploy/debian/postinst ${PROJECT_SOURCE_DIR}/deploy/debian/prerm
    ${PROJECT_SOURCE_DIR}/deploy/debian/postrm ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles)
# deploy/debian/conffiles is a bare list of paths (dpkg allows no comments there).
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
# etc/ is installed under the prefix (/usr/etc in the staging tree); Debian
# wants /etc: moved before the package is made.
set(CPACK_PRE_BUILD_SCRIPTS ${CMAKE_CURRENT_LIST_DIR}/deb-etc.cmake)
include(CPack)
