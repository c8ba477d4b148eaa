# Debian's build hardening (dpkg-buildflags with DEB_BUILD_MAINT_OPTIONS=
# hardening=+all on Debian 12): fortified libc calls, strong stack protector,
# format-string checks, full RELRO with immediate binding, and PIE. Included
# before any target is defined, so it applies to every target of the project
# (the daemon, its libraries, tests and benchmarks alike).
#
# RUNSYNC_HARDENING=OFF leaves the compiler's defaults.

option(RUNSYNC_HARDENING "Build with Debian's hardening flags" ON)
if(RUNSYNC_HARDENING)
  include(CheckPIESupported)
  check_pie_supported(LANGUAGES CXX)
  set(CMAKE_POSITION_INDEPENDENT_CODE ON)
  add_compile_options(
    -fstack-protector-strong
    -Wformat -Werror=format-security
    # glibc fortifies only optimised code and warns on every file otherwise.
    "$<$<NOT:$<CONFIG:Debug>>:-D_FORTIFY_SOURCE=2>")
  add_link_options(-Wl,-z,relro -Wl,-z,now)
endif()
