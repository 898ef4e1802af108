# Man pages: man/NAME.SECTION.scd -> <builddir>/man/NAME.SECTION with scdoc(1), at build
# time (target nbdd_man, part of `all`). The version in their footer is project()'s, the
# same NBDD_VERSION that `nbdd --version` prints. Without scdoc the pages are skipped with
# a warning (scripts/install-deps.sh installs it; the package needs them).
find_program(NBDD_SCDOC scdoc)
set(NBDD_MAN_PAGES)
if(NOT NBDD_SCDOC)
  message(WARNING "scdoc not found: man pages will not be built or installed")
  return()
endif()

# Dates in the pages are the last commit's when CMake configured, so a rebuild makes the same
# pages.
execute_process(
  COMMAND git -C ${PROJECT_SOURCE_DIR} log -1 --format=%ct
  OUTPUT_VARIABLE NBDD_SOURCE_DATE_EPOCH
  OUTPUT_STRIP_TRAILING_WHITESPACE
  ERROR_QUIET)
set(NBDD_MAN_ENV)
if(NBDD_SOURCE_DATE_EPOCH MATCHES "^[0-9]+$")  # outside git: scdoc uses today's date
  set(NBDD_MAN_ENV ${CMAKE_COMMAND} -E env SOURCE_DATE_EPOCH=${NBDD_SOURCE_DATE_EPOCH})
endif()

set(NBDD_VERSION ${PROJECT_VERSION})
file(GLOB NBDD_MAN_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/man/*.scd)
foreach(source ${NBDD_MAN_SOURCES})
  get_filename_component(page ${source} NAME_WLE)  # nbdd.1
  # scdoc turns a line ending in "++" into a line break and drops the "++": "C++" at the
  # end of a line would print as "C". Rewrap such lines.
  file(STRINGS ${source} broken REGEX "\\+\\+$")
  if(broken)
    message(FATAL_ERROR "${source}: a line ends in '++', which scdoc reads as a line break: ${broken}")
  endif()
  set(substituted ${PROJECT_BINARY_DIR}/man/${page}.scd)
  set(output ${PROJECT_BINARY_DIR}/man/${page})
  configure_file(${source} ${substituted} @ONLY)
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${NBDD_MAN_ENV}
            sh -c "\"$0\" < \"$1\" > \"$2.tmp\" && mv \"$2.tmp\" \"$2\"" ${NBDD_SCDOC} ${substituted} ${output}
    DEPENDS ${substituted}
    COMMENT "scdoc ${page}"
    VERBATIM)
  list(APPEND NBDD_MAN_PAGES ${output})
endforeach()
add_custom_target(nbdd_man ALL DEPENDS ${NBDD_MAN_PAGES})
