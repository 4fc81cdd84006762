# install.cmake — `cmake --install build --prefix P` lays out:
#   P/bin/vtopt                              the CLI (links fast.so files with P/lib/vtopt/*.a)
#   P/lib/vtopt/libvt_*.a                    the compiler as static libraries
#   P/include/vtopt/{ir,frontend,passes,runtime,codegen}.h, ops*.def  its public headers
#   P/include/vtopt/model.h                  the ABI of a compiled model (fast.so)
#   P/lib/pkgconfig/vtopt.pc                 pkg-config: the compiler library (relocatable)
#   P/lib/pkgconfig/vtopt-model.pc           pkg-config: model.h only (programs using a fast.so)
#   P/lib/cmake/vtopt/vtoptConfig.cmake      find_package(vtopt): vtopt::compiler, vtopt::model, vtopt_CLI
#   P/lib/python3/dist-packages/vtopt/       the Python package (finds P/bin/vtopt by itself)
# Paths inside the files are relative to where they are installed, so P may be moved.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(VT_INSTALL_LIBDIR ${CMAKE_INSTALL_LIBDIR}/vtopt)
set(VT_INSTALL_INCDIR ${CMAKE_INSTALL_INCLUDEDIR}/vtopt)
set(VT_INSTALL_PYDIR lib/python3/dist-packages)
# link order: dependants first
set(VT_INSTALL_LIBS vt_codegen vt_passes vt_frontend vt_cg_so vt_cg_rt vt_runtime vt_ir)

install(TARGETS vtopt RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS ${VT_INSTALL_LIBS} ARCHIVE DESTINATION ${VT_INSTALL_LIBDIR})
file(GLOB VT_OPS_DEFS ${PROJECT_SOURCE_DIR}/ir/ops*.def)   # ir.h includes ops.def, which includes the rest
install(FILES ir/ir.h ${VT_OPS_DEFS} frontend/frontend.h passes/passes.h runtime/runtime.h codegen/codegen.h
              include/vtopt/model.h
        DESTINATION ${VT_INSTALL_INCDIR})

# the libraries' external dependencies, for pkg-config and the CMake config
set(VT_INSTALL_EXT_LIBS "${VT_LIBLLVM} -lprotobuf-c -lpthread -ldl -lm")
set(VT_PC_LIBS "")
foreach(l ${VT_INSTALL_LIBS})
  string(REGEX REPLACE "^vt_" "" short ${l})
  string(APPEND VT_PC_LIBS " -lvt_${short}")
endforeach()

set(pcdir ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
file(RELATIVE_PATH VT_PC_TO_PREFIX /root/${pcdir} /root)   # "../.." for lib/pkgconfig
string(REGEX REPLACE "/$" "" VT_PC_TO_PREFIX "${VT_PC_TO_PREFIX}")
file(WRITE ${CMAKE_BINARY_DIR}/install/vtopt.pc
"# vtopt compiler library (static): ONNX -> IR -> passes -> LLVM codegen
prefix=\${pcfiledir}/${VT_PC_TO_PREFIX}
libdir=\${prefix}/${VT_INSTALL_LIBDIR}
includedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}

Name: vtopt
Description: vtopt, a compiler for vision/video transformers (ONNX -> IR -> passes -> LLVM 19)
Version: 0.1.0
Cflags: -I\${includedir}/vtopt -I\${includedir}
Libs: -L\${libdir}${VT_PC_LIBS} ${VT_INSTALL_EXT_LIBS}
")
file(WRITE ${CMAKE_BINARY_DIR}/install/vtopt-model.pc
"# the C ABI of a model compiled by vtopt (header only: dlopen a fast.so or link it)
prefix=\${pcfiledir}/${VT_PC_TO_PREFIX}
includedir=\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}

Name: vtopt-model
Description: C ABI of models compiled by vtopt (include <vtopt/model.h>)
Version: 0.1.0
Cflags: -I\${includedir}
Libs: -ldl
")
install(FILES ${CMAKE_BINARY_DIR}/install/vtopt.pc ${CMAKE_BINARY_DIR}/install/vtopt-model.pc DESTINATION ${pcdir})

set(VT_CMAKE_LIBS "")
foreach(l ${VT_INSTALL_LIBS})
  string(APPEND VT_CMAKE_LIBS "\${PACKAGE_PREFIX_DIR}/${VT_INSTALL_LIBDIR}/lib${l}.a;")
endforeach()
file(WRITE ${CMAKE_BINARY_DIR}/install/vtoptConfig.cmake.in
"# find_package(vtopt): vtopt::compiler (the static compiler libraries and headers), vtopt::model
# (include <vtopt/model.h> only), vtopt_CLI (the vtopt command).
@PACKAGE_INIT@
find_package(Threads REQUIRED)
if(NOT TARGET vtopt::compiler)
  add_library(vtopt::compiler INTERFACE IMPORTED)
  set_target_properties(vtopt::compiler PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES \"\${PACKAGE_PREFIX_DIR}/${VT_INSTALL_INCDIR};\${PACKAGE_PREFIX_DIR}/${CMAKE_INSTALL_INCLUDEDIR}\"
    INTERFACE_LINK_LIBRARIES \"${VT_CMAKE_LIBS}${VT_LIBLLVM};protobuf-c;Threads::Threads;\${CMAKE_DL_LIBS};m\")
  add_library(vtopt::model INTERFACE IMPORTED)
  set_target_properties(vtopt::model PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES \"\${PACKAGE_PREFIX_DIR}/${CMAKE_INSTALL_INCLUDEDIR}\"
    INTERFACE_LINK_LIBRARIES \"\${CMAKE_DL_LIBS}\")
endif()
set(vtopt_CLI \"\${PACKAGE_PREFIX_DIR}/${CMAKE_INSTALL_BINDIR}/vtopt\")
check_required_components(vtopt)
")
configure_package_config_file(${CMAKE_BINARY_DIR}/install/vtoptConfig.cmake.in
  ${CMAKE_BINARY_DIR}/install/vtoptConfig.cmake INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/vtopt)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/install/vtoptConfigVersion.cmake VERSION 0.1.0
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/install/vtoptConfig.cmake ${CMAKE_BINARY_DIR}/install/vtoptConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/vtopt)

# the Python package, told where the CLI is relative to itself
file(RELATIVE_PATH VT_PY_TO_CLI /root/${VT_INSTALL_PYDIR}/vtopt /root/${CMAKE_INSTALL_BINDIR}/vtopt)
file(WRITE ${CMAKE_BINARY_DIR}/install/_install_paths.py
"\"\"\"Written by vtopt's install step: where the installed vtopt command is, relative to this package.\"\"\"
import os

VTOPT_CLI = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), \"${VT_PY_TO_CLI}\"))
")
install(DIRECTORY python/vtopt DESTINATION ${VT_INSTALL_PYDIR} PATTERN __pycache__ EXCLUDE)
install(FILES ${CMAKE_BINARY_DIR}/install/_install_paths.py DESTINATION ${VT_INSTALL_PYDIR}/vtopt)

# `cpack -G DEB` (in the build folder): a .deb of the same tree under /usr (the Python package
# lands in /usr/lib/python3/dist-packages, on Debian's path).
set(CPACK_PACKAGE_NAME vtopt)
set(CPACK_PACKAGE_VERSION 0.1.0)
set(CPACK_PACKAGE_CONTACT "vtopt developers")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "compiler for vision/video transformers (ONNX -> token-reduced fast.so / portable ONNX)")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libllvm19, libprotobuf-c1, gcc | clang, python3-numpy")
include(CPack)
