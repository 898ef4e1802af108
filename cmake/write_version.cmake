# Run at build time by the nbdd_version_header target (cmake -P): writes OUTPUT from TEMPLATE
# with NBDD_VERSION and the git revision of NBDD_SOURCE_DIR. configure_file leaves the file
# (and its timestamp) alone when the text is unchanged, so nothing recompiles needlessly.
set(NBDD_GIT_REVISION unknown)
find_program(GIT_EXECUTABLE git)
if(GIT_EXECUTABLE)
  # Do not take index.lock for describe's refresh: others may be running git in this tree.
  set(ENV{GIT_OPTIONAL_LOCKS} 0)
  execute_process(
    COMMAND ${GIT_EXECUTABLE} -C ${NBDD_SOURCE_DIR} describe --always --dirty --abbrev=12
    OUTPUT_VARIABLE revision
    OUTPUT_STRIP_TRAILING_WHITESPACE
    ERROR_QUIET
    RESULT_VARIABLE status)
  if(status EQUAL 0 AND NOT revision STREQUAL "")
    set(NBDD_GIT_REVISION ${revision})
  endif()
endif()
configure_file(${TEMPLATE} ${OUTPUT} @ONLY)
