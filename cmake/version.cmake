# nbdd's version and the git revision it is built from, for `nbdd --version`.
#
# The header <builddir>/generated/nbdd_version.hpp defines NBDD_VERSION (project()'s
# version) and NBDD_GIT_REVISION (`git describe --always --dirty`, "unknown" outside a git
# checkout). It is rewritten on every build, but only when its text changes, so a build
# with nothing new recompiles nothing; a new commit or a tree turning dirty recompiles the
# one file that includes it. Targets that include it link nbdd_version.
set(NBDD_GENERATED_DIR ${PROJECT_BINARY_DIR}/generated)
set(NBDD_VERSION_HEADER ${NBDD_GENERATED_DIR}/nbdd_version.hpp)

add_custom_target(nbdd_version_header
  COMMAND ${CMAKE_COMMAND}
          -DNBDD_SOURCE_DIR=${PROJECT_SOURCE_DIR}
          -DNBDD_VERSION=${PROJECT_VERSION}
          -DTEMPLATE=${CMAKE_CURRENT_LIST_DIR}/nbdd_version.hpp.in
          -DOUTPUT=${NBDD_VERSION_HEADER}
          -P ${CMAKE_CURRENT_LIST_DIR}/write_version.cmake
  BYPRODUCTS ${NBDD_VERSION_HEADER}
  COMMENT "Checking the git revision for nbdd_version.hpp"
  VERBATIM)

add_library(nbdd_version INTERFACE)
target_include_directories(nbdd_version INTERFACE ${NBDD_GENERATED_DIR})
# An interface library builds nothing itself: its consumers wait for the header instead.
add_dependencies(nbdd_version nbdd_version_header)

# version_text() lives in net/options.cpp, compiled into nbdd_net.
if(TARGET nbdd_net)
  target_link_libraries(nbdd_net PRIVATE nbdd_version)
endif()
