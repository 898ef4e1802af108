# Included by `cmake --install` (see install.cmake), where CMAKE_INSTALL_PREFIX is the
# prefix of this install: writes the files that name installed paths and installs them
# with file(INSTALL), which honours DESTDIR and records them in install_manifest.txt.
function(nbdd_full_path out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

set(NBDD_PREFIX "${CMAKE_INSTALL_PREFIX}")
nbdd_full_path(NBDD_BINDIR "${NBDD_REL_BINDIR}")
nbdd_full_path(pkgconfig_dir "${NBDD_REL_PKGCONFIGDIR}")
nbdd_full_path(unit_dir "${NBDD_REL_UNITDIR}")
if(IS_ABSOLUTE "${NBDD_REL_INCLUDEDIR}")
  set(NBDD_PC_INCLUDEDIR "${NBDD_REL_INCLUDEDIR}")
else()
  set(NBDD_PC_INCLUDEDIR "\${prefix}/${NBDD_REL_INCLUDEDIR}")
endif()

configure_file("${NBDD_PC_TEMPLATE}" "${NBDD_WORK_DIR}/nbdd-plugin.pc" @ONLY)
file(INSTALL DESTINATION "${pkgconfig_dir}" TYPE FILE FILES "${NBDD_WORK_DIR}/nbdd-plugin.pc")

foreach(template ${NBDD_UNIT_TEMPLATES})
  get_filename_component(unit "${template}" NAME_WLE)  # nbdd@.service
  configure_file("${template}" "${NBDD_WORK_DIR}/${unit}" @ONLY)
  file(INSTALL DESTINATION "${unit_dir}" TYPE FILE FILES "${NBDD_WORK_DIR}/${unit}")
endforeach()
