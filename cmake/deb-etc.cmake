# cmake/deb-etc.cmake: CPack pre-build script (cmake/packaging.cmake). The
# staging tree holds <prefix>/etc (usr/etc for the .deb); the package needs
# /etc, where the daemons and deploy/systemd look (/etc/jetsched).
file(GLOB_RECURSE _staged_etc LIST_DIRECTORIES true "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*/etc/jetsched")
foreach(_dir ${_staged_etc})
  if(IS_DIRECTORY "${_dir}" AND _dir MATCHES "/usr/etc/jetsched$")
    get_filename_component(_usr "${_dir}/../.." ABSOLUTE)
    get_filename_component(_root "${_usr}/.." ABSOLUTE)
    file(MAKE_DIRECTORY "${_root}/etc")
    file(RENAME "${_usr}/etc/jetsched" "${_root}/etc/jetsched")
    file(GLOB _left "${_usr}/etc/*")
    if(NOT _left)
      file(REMOVE_RECURSE "${_usr}/etc")
    endif()
  endif()
endforeach()
