# One helper per kind of target, so every folder reads the same:
#   muse_add_library(comm SOURCES ... DEPS ...)        -> muse_comm, alias muse::comm
#   muse_add_executable(muse-train SOURCES ... DEPS ...)  -> build/bin/muse-train
#   muse_add_test(config_test SOURCES ... DEPS ... LABELS unit)
#   muse_add_mpi_test(comm_test SOURCES ... DEPS ... RANKS 2 4)

# LibTorch headers are slow to parse: every target that uses torch reuses one
# precompiled header built once.
add_library(muse_torch_pch OBJECT ${CMAKE_SOURCE_DIR}/cmake/torch_pch.cpp)
target_link_libraries(muse_torch_pch PUBLIC muse::torch)
target_compile_options(muse_torch_pch PRIVATE ${MUSE_WARNING_FLAGS})
target_precompile_headers(muse_torch_pch PRIVATE <ATen/ATen.h>)

function(_muse_setup_target target uses_torch)
  target_compile_options(${target} PRIVATE ${MUSE_WARNING_FLAGS})
  target_include_directories(${target} PUBLIC ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/generated)
  if(uses_torch)
    target_precompile_headers(${target} REUSE_FROM muse_torch_pch)
  endif()
endfunction()

# Does any of the targets in DEPS (transitively, through muse:: aliases) use
# torch? Targets record it in the MUSE_USES_TORCH property.
function(_muse_deps_use_torch out)
  set(result OFF)
  foreach(dep ${ARGN})
    if(dep STREQUAL "muse::torch")
      set(result ON)
    elseif(TARGET ${dep})
      get_target_property(real ${dep} ALIASED_TARGET)
      if(NOT real)
        set(real ${dep})
      endif()
      get_target_property(flag ${real} MUSE_USES_TORCH)
      if(flag)
        set(result ON)
      endif()
    endif()
  endforeach()
  set(${out} ${result} PARENT_SCOPE)
endfunction()

function(muse_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(muse_${name} STATIC ${ARG_SOURCES})
  add_library(muse::${name} ALIAS muse_${name})
  target_link_libraries(muse_${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  _muse_deps_use_torch(uses_torch ${ARG_DEPS} ${ARG_PRIVATE_DEPS})
  set_target_properties(muse_${name} PROPERTIES MUSE_USES_TORCH ${uses_torch})
  _muse_setup_target(muse_${name} ${uses_torch})
endfunction()

function(muse_add_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
  _muse_deps_use_torch(uses_torch ${ARG_DEPS})
  _muse_setup_target(${name} ${uses_torch})
endfunction()

# A GoogleTest binary; its tests are discovered when ctest runs (not at build
# time, so LibTorch binaries never run during the build).
function(muse_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  muse_add_executable(${name} SOURCES ${ARG_SOURCES} DEPS ${ARG_DEPS} GTest::gtest_main GTest::gmock)
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT 300
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
endfunction()

# A GoogleTest binary run as one ctest test per rank count under mpirun.
set(MUSE_MPIRUN_FLAGS --oversubscribe --bind-to none --mca btl self,vader,tcp
    CACHE STRING "Flags passed to mpirun by multi-rank tests")
function(muse_add_mpi_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;RANKS;LABELS" ${ARGN})
  muse_add_executable(${name} SOURCES ${ARG_SOURCES} DEPS ${ARG_DEPS} GTest::gtest GTest::gmock)
  foreach(np ${ARG_RANKS})
    add_test(NAME ${name}_np${np}
      COMMAND ${MPIEXEC_EXECUTABLE} -np ${np} ${MUSE_MPIRUN_FLAGS} $<TARGET_FILE:${name}>
      WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
    set_tests_properties(${name}_np${np} PROPERTIES LABELS "dist;${ARG_LABELS}" TIMEOUT 300
      ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")
  endforeach()
endfunction()
