# Runs at install time (`cmake --install`, cpack), not at configure time: the
# unit and the example config name installed paths, and those depend on the
# prefix chosen when installing (`--prefix`, CPACK_PACKAGING_INSTALL_PREFIX).
#
# Installs, under the install-time CMAKE_INSTALL_PREFIX (and $DESTDIR):
#   lib/systemd/system/runsync.service   configured from systemd/runsync.service.in
#   lib/sysusers.d/runsync.conf          systemd/runsync.sysusers
#   <sysconfdir>/runsync/runsync.toml.example
# where <sysconfdir> follows GNUInstallDirs' CMAKE_INSTALL_FULL_SYSCONFDIR: /etc
# for the prefixes / and /usr, /etc/opt/<name> for /opt/<name>, else
# <prefix>/etc.
#
# Expects from the install(CODE) that precedes it: RUNSYNC_SOURCE_DIR,
# RUNSYNC_BINARY_DIR and the GNUInstallDirs values RUNSYNC_BINDIR,
# RUNSYNC_SYSCONFDIR, RUNSYNC_DOCDIR (relative or absolute).

# GNUInstallDirs_get_absolute_install_dir, evaluated for the install-time prefix.
function(runsync_full_install_dir out relative dirname)
  set(prefix "${CMAKE_INSTALL_PREFIX}")
  string(REGEX REPLACE "/+$" "" prefix_trimmed "${prefix}")
  if(IS_ABSOLUTE "${relative}")
    set(full "${relative}")
  elseif(prefix STREQUAL "/")
    if(dirname STREQUAL "SYSCONFDIR")
      set(full "/${relative}")
    elseif(relative MATCHES "^usr/")
      set(full "/${relative}")
    else()
      set(full "/usr/${relative}")
    endif()
  elseif(prefix_trimmed STREQUAL "/usr")
    if(dirname STREQUAL "SYSCONFDIR")
      set(full "/${relative}")
    else()
      set(full "/usr/${relative}")
    endif()
  elseif(prefix MATCHES "^/opt/(.*)" AND dirname STREQUAL "SYSCONFDIR")
    set(full "/${relative}/${CMAKE_MATCH_1}")
  else()
    set(full "${prefix}/${relative}")
  endif()
  set(${out} "${full}" PARENT_SCOPE)
endfunction()

runsync_full_install_dir(CMAKE_INSTALL_FULL_BINDIR "${RUNSYNC_BINDIR}" BINDIR)
runsync_full_install_dir(CMAKE_INSTALL_FULL_SYSCONFDIR "${RUNSYNC_SYSCONFDIR}" SYSCONFDIR)
runsync_full_install_dir(CMAKE_INSTALL_FULL_DOCDIR "${RUNSYNC_DOCDIR}" DOCDIR)

# One scratch file per destination, so installs to different places (tests,
# cpack) can run at the same time.
string(MD5 destination_key "$ENV{DESTDIR}|${CMAKE_INSTALL_PREFIX}")
set(unit_dir "${RUNSYNC_BINARY_DIR}/systemd/install-${destination_key}")
configure_file("${RUNSYNC_SOURCE_DIR}/systemd/runsync.service.in"
               "${unit_dir}/runsync.service" @ONLY)

file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE
     FILES "${unit_dir}/runsync.service")
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/sysusers.d" TYPE FILE
     RENAME runsync.conf FILES "${RUNSYNC_SOURCE_DIR}/systemd/runsync.sysusers")
file(INSTALL DESTINATION "${CMAKE_INSTALL_FULL_SYSCONFDIR}/runsync" TYPE FILE
     FILES "${RUNSYNC_SOURCE_DIR}/systemd/runsync.toml.example")
