# libdsc as a shared library, and the files that let other projects build
# against the installed library: dsc.pc (pkg-config) and dscConfig.cmake +
# dscConfigVersion.cmake (find_package(dsc) gives dsc::dsc, the shared
# library, and dsc::dsc_static).  Included by the top-level CMakeLists.txt
# after dsc_obj and dsc_static are defined; dsc_install_library_files() adds
# the install rules.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# 0.x: every minor version may change the ABI, so it is part of the SONAME.
set(DSC_SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
add_library(dsc_shared SHARED $<TARGET_OBJECTS:dsc_obj>)
set_target_properties(dsc_shared PROPERTIES OUTPUT_NAME dsc VERSION ${PROJECT_VERSION} SOVERSION ${DSC_SOVERSION})
target_include_directories(dsc_shared PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
target_link_libraries(dsc_shared PRIVATE PkgConfig::CJSON m Threads::Threads ${CMAKE_DL_LIBS})
if(DSC_WITH_LLVM)
  target_link_libraries(dsc_shared PRIVATE ${DSC_LLVM_LIBS})
endif()
if(NOT DSC_SANITIZE AND NOT DSC_FUZZ) # the sanitizer runtimes come with the executable
  target_link_options(dsc_shared PRIVATE -Wl,--no-undefined)
endif()

# What a static link needs besides libdsc.a, for Libs.private and dsc::dsc_static.
get_filename_component(_dsc_llvm_dir "${DSC_LLVM_LIBS}" DIRECTORY)
get_filename_component(_dsc_llvm_name "${DSC_LLVM_LIBS}" NAME_WE)
string(REGEX REPLACE "^lib" "" _dsc_llvm_name "${_dsc_llvm_name}")
set(DSC_PC_LIBS_PRIVATE "-lm -lpthread -ldl")
set(DSC_STATIC_DEPS "cjson;m;Threads::Threads;${CMAKE_DL_LIBS}")
if(DSC_WITH_LLVM)
  set(DSC_PC_LIBS_PRIVATE "-L${_dsc_llvm_dir} -l${_dsc_llvm_name} ${DSC_PC_LIBS_PRIVATE}")
  list(APPEND DSC_STATIC_DEPS "${DSC_LLVM_LIBS}")
endif()

# dsc.pc names its prefix relative to its own place (cmake --install --prefix
# may move the whole tree after configuring).
file(RELATIVE_PATH DSC_PC_PREFIX_FROM_PCDIR "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/dsc.pc.in ${CMAKE_CURRENT_BINARY_DIR}/dsc.pc @ONLY)
configure_package_config_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/dscConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/dscConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/dsc
  PATH_VARS CMAKE_INSTALL_LIBDIR CMAKE_INSTALL_INCLUDEDIR)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/dscConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)

function(dsc_install_library_files)
  install(TARGETS dsc_shared LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/dsc.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/dscConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/dscConfigVersion.cmake
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/dsc)
endfunction()
