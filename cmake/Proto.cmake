# Generates C++ (and gRPC stubs) from the .proto files under proto/ into one library.
#
#   cilium_proto_library(<target> PROTOS <relative/path.proto> ... [GRPC <relative/path.proto> ...]
#                        [ROOT <dir>])
#
# Paths are relative to proto/ (or ROOT: a test's own protos), which is also the import root
# ("flow/flow.proto"), so generated headers are included as "flow/flow.pb.h" and
# "observer/observer.grpc.pb.h". Generated code is
# compiled without the project's -Werror (it is not ours to fix) and at -O1: it is large and the
# build machines have 2 cores.

pkg_check_modules(GRPCPP REQUIRED IMPORTED_TARGET grpc++)
pkg_check_modules(PROTOBUF REQUIRED IMPORTED_TARGET protobuf)
find_program(PROTOC protoc REQUIRED)
find_program(GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)

function(cilium_proto_library target)
  cmake_parse_arguments(ARG "" "ROOT" "PROTOS;GRPC" ${ARGN})
  set(root ${PROJECT_SOURCE_DIR}/proto)
  set(out ${PROJECT_BINARY_DIR}/proto/gen)
  if(ARG_ROOT)
    set(root ${ARG_ROOT})
    set(out ${CMAKE_CURRENT_BINARY_DIR}/gen)
  endif()
  file(MAKE_DIRECTORY ${out})
  set(srcs)
  foreach(p IN LISTS ARG_PROTOS)
    string(REGEX REPLACE "\\.proto$" "" base ${p})
    set(gen ${out}/${base}.pb.cc ${out}/${base}.pb.h)
    set(cmd ${PROTOC} -I${root} --cpp_out=${out})
    if(p IN_LIST ARG_GRPC)
      list(APPEND gen ${out}/${base}.grpc.pb.cc ${out}/${base}.grpc.pb.h)
      list(APPEND cmd --grpc_out=${out} --plugin=protoc-gen-grpc=${GRPC_CPP_PLUGIN})
    endif()
    add_custom_command(OUTPUT ${gen}
      COMMAND ${cmd} ${root}/${p}
      DEPENDS ${root}/${p}
      COMMENT "protoc ${p}"
      VERBATIM)
    list(APPEND srcs ${gen})
  endforeach()
  add_library(${target} STATIC ${srcs})
  target_include_directories(${target} SYSTEM PUBLIC ${out})
  target_compile_options(${target} PRIVATE -O1 -w)
  target_link_libraries(${target} PUBLIC PkgConfig::GRPCPP PkgConfig::PROTOBUF Threads::Threads)
endfunction()
