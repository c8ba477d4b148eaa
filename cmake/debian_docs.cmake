# The Debian documentation files every installed tree carries in its doc
# directory (usr/share/doc/runsync in the package), written at configure time:
#   copyright             DEP-5, from LICENSE: its Apache-2.0 notice and a
#                         pointer to /usr/share/common-licenses/Apache-2.0
#   changelog.Debian.gz   cmake/debian/changelog, gzip -9n
# Sets RUNSYNC_DEB_RELEASE to the Debian revision of the changelog's latest
# entry, whose upstream version must be PROJECT_VERSION.
#
# Expects RUNSYNC_DEB_MAINTAINER (the upstream contact) and RUNSYNC_GZIP.

set(license_file ${CMAKE_CURRENT_SOURCE_DIR}/LICENSE)
set(changelog_file ${CMAKE_CURRENT_SOURCE_DIR}/cmake/debian/changelog)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
  ${license_file} ${changelog_file} ${CMAKE_CURRENT_LIST_DIR}/debian/copyright.in)
set(RUNSYNC_DEBIAN_DOCS_DIR ${CMAKE_CURRENT_BINARY_DIR}/debian-docs)

# copyright: the notice of LICENSE's appendix, as a DEP-5 license paragraph
# (continuation lines indented by one space, empty lines as " .").
file(READ ${license_file} license_text)
if(NOT license_text MATCHES "Apache License[ \n]+Version 2\\.0, January 2004")
  message(FATAL_ERROR "${license_file} is not the Apache License 2.0 text")
endif()
if(NOT license_text MATCHES "\n([ ]*Licensed under the Apache License[^\n]*\n.*limitations under the License\\.)\n")
  message(FATAL_ERROR "${license_file} has no Apache-2.0 notice in its appendix")
endif()
set(notice "${CMAKE_MATCH_1}")
string(REGEX MATCH "^ *" indent "${notice}")
string(REPLACE "\n${indent}" "\n " notice "\n${notice}")
string(REPLACE "\n\n" "\n .\n" notice "${notice}")
string(SUBSTRING "${notice}" 1 -1 RUNSYNC_LICENSE_NOTICE)
configure_file(${CMAKE_CURRENT_LIST_DIR}/debian/copyright.in
               ${RUNSYNC_DEBIAN_DOCS_DIR}/copyright @ONLY)

# changelog.Debian.gz, and the revision it names.
file(STRINGS ${changelog_file} changelog_head LIMIT_COUNT 1)
if(NOT changelog_head MATCHES "^runsync \\(([^)-]+)-([^)]+)\\) ")
  message(FATAL_ERROR "${changelog_file}: first line is not `runsync (VERSION-REVISION) …`")
endif()
if(NOT CMAKE_MATCH_1 STREQUAL PROJECT_VERSION)
  message(FATAL_ERROR "${changelog_file}: latest entry is for ${CMAKE_MATCH_1}, "
                      "the project is ${PROJECT_VERSION}: add an entry")
endif()
set(RUNSYNC_DEB_RELEASE ${CMAKE_MATCH_2})
execute_process(COMMAND ${RUNSYNC_GZIP} -9n -c ${changelog_file}
                OUTPUT_FILE ${RUNSYNC_DEBIAN_DOCS_DIR}/changelog.Debian.gz
                RESULT_VARIABLE gzip_result)
if(NOT gzip_result EQUAL 0)
  message(FATAL_ERROR "gzip -9n ${changelog_file} failed: ${gzip_result}")
endif()
