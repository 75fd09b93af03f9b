# Compiler launcher and warning flags shared by every project target.

find_program(MUSE_CCACHE ccache)
if(MUSE_CCACHE)
  # Precompiled headers are only cacheable with these sloppiness settings;
  # ccache 4.7 takes them from the environment, so wrap it in `cmake -E env`.
  set(_muse_launcher ${CMAKE_COMMAND} -E env
      CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      ${MUSE_CCACHE})
  set(CMAKE_C_COMPILER_LAUNCHER ${_muse_launcher})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_muse_launcher})
endif()

# Flags for project code only; third-party headers come in as SYSTEM includes.
# -Wno-restrict, -Wno-stringop-overflow: GCC 12 reports false overlaps and
# sizes inside std::string at -O3 (GCC bugs 105329, 105651).
set(MUSE_WARNING_FLAGS -Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor -Wno-restrict
    -Wno-stringop-overflow)
if(MUSE_WARNINGS_AS_ERRORS)
  list(APPEND MUSE_WARNING_FLAGS -Werror)
endif()

# Asserts stay on in every build type: they guard invariants, not debugging.
string(REPLACE "-DNDEBUG" "" CMAKE_CXX_FLAGS_RELEASE "${CMAKE_CXX_FLAGS_RELEASE}")
string(REPLACE "-DNDEBUG" "" CMAKE_CXX_FLAGS_RELWITHDEBINFO "${CMAKE_CXX_FLAGS_RELWITHDEBINFO}")
