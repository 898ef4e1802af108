# What `cmake --install` puts under CMAKE_INSTALL_PREFIX (DESTDIR honoured; nothing is
# written outside the prefix):
#   bin/nbdd, bin/nbdd-sim
#   include/nbdd/...               plugins/plugin_api.hpp and the headers it includes
#   share/pkgconfig/nbdd-plugin.pc `pkg-config --cflags nbdd-plugin`
#   share/man/man1, man3           nbdd(1), nbdd-sim(1), nbdd-plugin(3) (cmake/man.cmake)
#   lib/systemd/system             nbdd@.socket, nbdd@.service, nbdd.service
#   share/doc/nbdd/examples        the out-of-tree plugin example, a systemd config
# The built-in plugins are linked into nbdd (there are no plugin files to install); a
# loadable plugin is always named by its path.
#
# Files that name installed paths (the units' ExecStart, the .pc file's prefix) are written
# at install time, so `cmake --install BUILD --prefix /usr` (scripts/package.sh) is right
# whatever prefix the build was configured with.
include(GNUInstallDirs)
include(${CMAKE_CURRENT_LIST_DIR}/man.cmake)

set(NBDD_SYSTEMD_UNIT_DIR lib/systemd/system CACHE STRING
    "Where systemd units are installed, relative to the prefix (or absolute)")

foreach(program nbdd nbdd-sim)
  if(TARGET ${program})
    install(TARGETS ${program} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()

# The plugin SDK: plugins/plugin_api.hpp and every project header it includes, directly or
# not, at the same relative paths (its #include "core/..." lines work unchanged). Found by
# reading the #include lines, so a header added to the API is installed without a change
# here; CMake re-runs when one of these headers changes.
set(NBDD_SDK_HEADERS)
set(pending plugins/plugin_api.hpp)
while(pending)
  list(POP_FRONT pending header)
  if(header IN_LIST NBDD_SDK_HEADERS)
    continue()
  endif()
  if(NOT EXISTS ${PROJECT_SOURCE_DIR}/${header})
    message(FATAL_ERROR "plugin SDK: ${header} is included but does not exist")
  endif()
  list(APPEND NBDD_SDK_HEADERS ${header})
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/${header})
  file(STRINGS ${PROJECT_SOURCE_DIR}/${header} includes REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(line ${includes})
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\".*" "\\1" included "${line}")
    list(APPEND pending ${included})
  endforeach()
endwhile()
foreach(header ${NBDD_SDK_HEADERS})
  get_filename_component(dir ${header} DIRECTORY)
  install(FILES ${PROJECT_SOURCE_DIR}/${header} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/nbdd/${dir})
endforeach()

file(STRINGS ${PROJECT_SOURCE_DIR}/plugins/plugin_api.hpp api_line
     REGEX "inline constexpr int api_version = [0-9]+;")
string(REGEX REPLACE ".*api_version = ([0-9]+).*" "\\1" NBDD_PLUGIN_API_VERSION "${api_line}")
if(NOT NBDD_PLUGIN_API_VERSION MATCHES "^[0-9]+$")
  message(FATAL_ERROR "plugin SDK: no `inline constexpr int api_version = N;` in plugins/plugin_api.hpp")
endif()

foreach(page ${NBDD_MAN_PAGES})
  string(REGEX MATCH "[0-9]$" section ${page})
  install(FILES ${page} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
endforeach()

install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples
        PATTERN build EXCLUDE)

file(GLOB NBDD_SYSTEMD_UNITS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/systemd/*.in)
install(CODE "
  set(NBDD_VERSION \"${PROJECT_VERSION}\")
  set(NBDD_PLUGIN_API_VERSION \"${NBDD_PLUGIN_API_VERSION}\")
  set(NBDD_REL_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(NBDD_REL_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
  set(NBDD_REL_PKGCONFIGDIR \"${CMAKE_INSTALL_DATADIR}/pkgconfig\")
  set(NBDD_REL_UNITDIR \"${NBDD_SYSTEMD_UNIT_DIR}\")
  set(NBDD_PC_TEMPLATE \"${CMAKE_CURRENT_LIST_DIR}/nbdd-plugin.pc.in\")
  set(NBDD_UNIT_TEMPLATES \"${NBDD_SYSTEMD_UNITS}\")
  set(NBDD_WORK_DIR \"${PROJECT_BINARY_DIR}/install-time\")
  include(\"${CMAKE_CURRENT_LIST_DIR}/install_time.cmake\")
")

# Full RELRO for the installed programs (Debian's hardening; a relink only): the GOT is
# read-only once the program has started.
foreach(program nbdd nbdd-sim)
  if(TARGET ${program})
    target_link_options(${program} PRIVATE "LINKER:-z,relro" "LINKER:-z,now")
  endif()
endforeach()
