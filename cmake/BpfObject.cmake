# Builds CO-RE eBPF objects at build time and turns each into a bpftool skeleton header that embeds
# the object, so that binaries carry their programs and need no compiler at run time.
#
#   cilium_bpf_vmlinux()                       generates ${CILIUM_BPF_GEN_DIR}/vmlinux.h once
#   cilium_bpf_object(<name> SOURCE <file.c>)  builds <name>.bpf.o and <name>.skel.h
#
# The target cilium_bpf_skeletons (INTERFACE) carries the include directory of every skeleton and
# depends on their generation.

set(CILIUM_BPF_GEN_DIR ${PROJECT_BINARY_DIR}/bpf/gen)
set(CILIUM_VMLINUX_BTF "/sys/kernel/btf/vmlinux" CACHE FILEPATH
    "BTF blob that vmlinux.h is generated from")
set(CILIUM_VMLINUX_H "" CACHE FILEPATH
    "Use this vmlinux.h instead of generating one (for build hosts without kernel BTF)")

set(CILIUM_BPF_CFLAGS
  -target bpf -g -O2 -mcpu=v3 -D__TARGET_ARCH_x86
  -Wall -Wextra -Werror -Wno-unused-parameter -Wno-address-of-packed-member
  -fno-stack-protector)

function(cilium_bpf_vmlinux)
  file(MAKE_DIRECTORY ${CILIUM_BPF_GEN_DIR})
  set(out ${CILIUM_BPF_GEN_DIR}/vmlinux.h)
  if(CILIUM_VMLINUX_H)
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -E copy ${CILIUM_VMLINUX_H} ${out}
      DEPENDS ${CILIUM_VMLINUX_H}
      COMMENT "Copying vmlinux.h")
  else()
    if(NOT EXISTS ${CILIUM_VMLINUX_BTF})
      message(FATAL_ERROR "${CILIUM_VMLINUX_BTF} does not exist: this kernel has no BTF. "
                          "Pass -DCILIUM_VMLINUX_H=<path to a vmlinux.h>.")
    endif()
    add_custom_command(OUTPUT ${out}
      COMMAND ${BPFTOOL} btf dump file ${CILIUM_VMLINUX_BTF} format c > ${out}.tmp
      COMMAND ${CMAKE_COMMAND} -E rename ${out}.tmp ${out}
      COMMENT "Generating vmlinux.h from ${CILIUM_VMLINUX_BTF}")
  endif()
  add_custom_target(cilium_bpf_vmlinux DEPENDS ${out})
  add_library(cilium_bpf_skeletons INTERFACE)
  target_include_directories(cilium_bpf_skeletons INTERFACE ${CILIUM_BPF_GEN_DIR})
  target_link_libraries(cilium_bpf_skeletons INTERFACE PkgConfig::LIBBPF PkgConfig::LIBELF PkgConfig::ZLIB)
endfunction()

function(cilium_bpf_object name)
  cmake_parse_arguments(ARG "" "SOURCE" "" ${ARGN})
  set(src ${CMAKE_CURRENT_SOURCE_DIR}/${ARG_SOURCE})
  set(obj ${CILIUM_BPF_GEN_DIR}/${name}.tmp.o)
  set(linked ${CILIUM_BPF_GEN_DIR}/${name}.bpf.o)
  set(skel ${CILIUM_BPF_GEN_DIR}/${name}.skel.h)
  add_custom_command(OUTPUT ${obj}
    COMMAND ${CLANG_BPF} ${CILIUM_BPF_CFLAGS}
            -I${PROJECT_SOURCE_DIR}/bpf -I${PROJECT_SOURCE_DIR}/bpf/include -I${CILIUM_BPF_GEN_DIR}
            -MD -MF ${obj}.d -c ${src} -o ${obj}
    DEPENDS ${src} ${CILIUM_BPF_GEN_DIR}/vmlinux.h
    DEPFILE ${obj}.d
    COMMENT "BPF ${name}: clang -target bpf"
    VERBATIM)
  # `gen object` links the object (resolving static/extern symbols) and drops DWARF while keeping
  # BTF, which keeps the embedded object small.
  add_custom_command(OUTPUT ${linked} ${skel}
    COMMAND ${BPFTOOL} gen object ${linked} ${obj}
    COMMAND ${BPFTOOL} gen skeleton ${linked} name ${name} > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "BPF ${name}: skeleton"
    VERBATIM)
  add_custom_target(${name}_skel DEPENDS ${skel})
  add_dependencies(cilium_bpf_skeletons ${name}_skel)
endfunction()
