// NVTX ranges: named spans of host time that Nsight Systems shows on the
// timeline above the CUDA work they enqueue (docs/gpu.md).
//
//   const telemetry::NvtxRange range("step 12");         // pushed here, popped at scope end
//   const telemetry::NvtxRange range("nccl all_gather", bytes);  // with an int64 payload
//
// In CUDA builds (MUSE_WITH_NCCL) these are NVTX3 push/pop calls on the
// calling thread: header-only, nothing to link, and close to free when no
// profiler is attached. In CPU builds the class is empty and its calls
// compile to nothing. Ranges nest; a range must end on the thread that
// started it, which scoping guarantees.
#pragma once

#include <cstdint>
#include <string>

#ifdef MUSE_WITH_NCCL
#include <nvtx3/nvToolsExt.h>
#endif

namespace muse::telemetry {

class NvtxRange {
 public:
#ifdef MUSE_WITH_NCCL
  explicit NvtxRange(const char* name) {
    nvtxRangePushA(name);
  }
  explicit NvtxRange(const std::string& name) : NvtxRange(name.c_str()) {}
  // `payload` appears with the range in the profiler (e.g. a size in bytes),
  // so that `name` can stay a constant string that costs nothing to build.
  NvtxRange(const char* name, int64_t payload) {
    nvtxEventAttributes_t attributes{};
    attributes.version = NVTX_VERSION;
    attributes.size = NVTX_EVENT_ATTRIB_STRUCT_SIZE;
    attributes.payloadType = NVTX_PAYLOAD_TYPE_INT64;
    attributes.payload.llValue = payload;
    attributes.messageType = NVTX_MESSAGE_TYPE_ASCII;
    attributes.message.ascii = name;
    nvtxRangePushEx(&attributes);
  }
  ~NvtxRange() {
    nvtxRangePop();
  }
#else
  explicit NvtxRange(const char* /*name*/) {}
  explicit NvtxRange(const std::string& /*name*/) {}
  NvtxRange(const char* /*name*/, int64_t /*payload*/) {}
#endif

  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace muse::telemetry
