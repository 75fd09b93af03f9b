#include "rl/fault_point.h"

#include <dlfcn.h>

namespace muse::rl {
namespace {

using FaultHook = void (*)(const char* phase, int64_t step);

FaultHook preloaded_hook() {
  // POSIX guarantees that dlsym's pointer converts to a function pointer.
  return reinterpret_cast<FaultHook>(dlsym(RTLD_DEFAULT, "muse_fault_point"));
}

}  // namespace

void fault_point(const char* phase, int64_t step) {
  static const FaultHook hook = preloaded_hook();
  if (hook != nullptr) hook(phase, step);
}

}  // namespace muse::rl
