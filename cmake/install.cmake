# install.cmake: what `cmake --install BUILD [--prefix P]` puts where. Everything installed is
# first staged in the build tree (headers, templates, man pages, package files), so a build
# whose source tree was moved or deleted still installs.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(KF_STAGE ${CMAKE_BINARY_DIR}/stage)

# ---- public headers: include/kforge/*.h ----
set(KF_PUBLIC_HEADERS
  ${CMAKE_SOURCE_DIR}/include/kforge/kforge.h=kforge.h
  ${CMAKE_SOURCE_DIR}/runtime/quant/kf_quant.h=quant.h
  ${CMAKE_SOURCE_DIR}/runtime/dispatch/kf_dispatch.h=dispatch.h
  ${CMAKE_SOURCE_DIR}/runtime/lopt/kf_lopt.h=lopt.h
  ${CMAKE_SOURCE_DIR}/runtime/ais/kf_ais.h=ais.h)
foreach(pair ${KF_PUBLIC_HEADERS})
  string(REPLACE "=" ";" pair "${pair}")
  list(GET pair 0 src)
  list(GET pair 1 dst)
  if(EXISTS ${src})
    configure_file(${src} ${KF_STAGE}/include/kforge/${dst} COPYONLY)
  endif()
endforeach()
install(DIRECTORY ${KF_STAGE}/include/kforge DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)

# ---- templates (and their library templates/lib) ----
file(GLOB KF_TEMPLATE_FILES CONFIGURE_DEPENDS RELATIVE ${CMAKE_SOURCE_DIR}/templates
  ${CMAKE_SOURCE_DIR}/templates/*.lua ${CMAKE_SOURCE_DIR}/templates/lib/*.lua)
foreach(f ${KF_TEMPLATE_FILES})
  configure_file(${CMAKE_SOURCE_DIR}/templates/${f} ${KF_STAGE}/share/kforge/templates/${f} COPYONLY)
endforeach()
install(DIRECTORY ${KF_STAGE}/share/kforge/templates DESTINATION ${CMAKE_INSTALL_DATADIR}/kforge
  COMPONENT runtime)

# ---- the binary and the libraries ----
install(TARGETS kforge RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
install(TARGETS kforge_shared LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT dev COMPONENT runtime)
install(TARGETS kforge_core ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
# the runtime libraries, each usable alone (no Lua, LLVM or SQLite)
set(KF_RUNTIME_LIBS kf_quant=kforge_quant kf_dispatch=kforge_dispatch kforge_lopt=kforge_lopt)
foreach(pair ${KF_RUNTIME_LIBS})
  string(REPLACE "=" ";" pair "${pair}")
  list(GET pair 0 tgt)
  list(GET pair 1 out)
  if(TARGET ${tgt})
    set_target_properties(${tgt} PROPERTIES OUTPUT_NAME ${out})
    install(TARGETS ${tgt} ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
  endif()
endforeach()
foreach(doc LICENSE README.md docs/ARCHITECTURE.md)
  get_filename_component(doc_name ${doc} NAME)
  configure_file(${CMAKE_SOURCE_DIR}/${doc} ${KF_STAGE}/doc/${doc_name} COPYONLY)
endforeach()
install(DIRECTORY ${KF_STAGE}/doc/ DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT runtime)

# ---- pkg-config: kforge.pc and one per runtime library ----
set(KF_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
set(KF_PC_INCDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
function(kf_pc name desc libs libs_private requires_private)
  file(WRITE ${KF_STAGE}/pkgconfig/${name}.pc
"prefix=\${pcfiledir}/../..
libdir=${KF_PC_LIBDIR}
includedir=${KF_PC_INCDIR}

Name: ${name}
Description: ${desc}
Version: ${PROJECT_VERSION}
Requires.private: ${requires_private}
Cflags: -I\${includedir}
Libs: -L\${libdir} ${libs}
Libs.private: ${libs_private}
")
endfunction()
kf_pc(kforge "kforge kernel generator: templates, kernels, JIT (libkforge)" "-lkforge"
  "-lkforge_quant -lLLVM-19 -llua5.4 -lpthread -ldl -lm" "")
kf_pc(kforge-quant "kforge quantization formats and weight packing" "-lkforge_quant" "-lm" "")
kf_pc(kforge-dispatch "kforge dispatch runtime for tuned kernel libraries" "-lkforge_dispatch" "-lpthread -lm" "")
kf_pc(kforge-lopt "kforge LoPT: byte-level BPE tokenizer with lossless parallel tokenization" "-lkforge_lopt"
  "-lpthread" "libpcre2-8 libcjson")
kf_pc(kforge-ais "kforge AIS: importance weights for RL with low-precision rollouts" "-lkforge_ais" "-lm" "")
install(DIRECTORY ${KF_STAGE}/pkgconfig DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)

# ---- CMake package: find_package(kforge) -> kforge::kforge, kforge::quant, ... ----
file(RELATIVE_PATH KF_CFG_TO_PREFIX ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/cmake/kforge ${CMAKE_INSTALL_PREFIX})
configure_file(${CMAKE_SOURCE_DIR}/cmake/kforgeConfig.cmake.in ${KF_STAGE}/cmake/kforgeConfig.cmake @ONLY)
write_basic_package_version_file(${KF_STAGE}/cmake/kforgeConfigVersion.cmake VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(DIRECTORY ${KF_STAGE}/cmake/ DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/kforge COMPONENT dev)

# ---- man pages from --help (Debian's help2man): kforge(1) and kforge-VERB(1) ----
find_program(KF_HELP2MAN help2man)
if(KF_HELP2MAN)
  set(KF_MAN_VERBS list gen check bench numerics)
  if(TARGET kforge_tuner)
    list(APPEND KF_MAN_VERBS tune db lib plot)
  endif()
  if(TARGET kforge_ascend)
    list(APPEND KF_MAN_VERBS sim)
  endif()
  if(TARGET kforge_lopt_cli)
    list(APPEND KF_MAN_VERBS tokenize)
  endif()
  set(KF_MAN_OUT ${KF_STAGE}/man/man1/kforge.1)
  foreach(v ${KF_MAN_VERBS})
    list(APPEND KF_MAN_OUT ${KF_STAGE}/man/man1/kforge-${v}.1)
  endforeach()
  add_custom_command(OUTPUT ${KF_MAN_OUT}
    COMMAND ${CMAKE_COMMAND} -DKFORGE=$<TARGET_FILE:kforge> -DHELP2MAN=${KF_HELP2MAN}
            "-DVERBS=${KF_MAN_VERBS}" -DOUT=${KF_STAGE}/man/man1 -P ${CMAKE_SOURCE_DIR}/cmake/man.cmake
    DEPENDS kforge ${CMAKE_SOURCE_DIR}/cmake/man.cmake
    COMMENT "kforge: man pages (help2man)" VERBATIM)
  add_custom_target(kforge_man ALL DEPENDS ${KF_MAN_OUT})
  install(DIRECTORY ${KF_STAGE}/man/ DESTINATION ${CMAKE_INSTALL_MANDIR} COMPONENT runtime)
else()
  message(WARNING "kforge: help2man not found: no man pages (apt-get install help2man)")
endif()
