#include "trainer/memory_meter.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <vector>

namespace muse::trainer {
namespace {

// ---- The tracking allocator, with its cache of large blocks. ----

// Each block starts with a header that records its size and how the wrapped
// allocator frees it; the caller's data follows at kHeaderBytes, which keeps
// the default allocator's 64-byte alignment. The data pointer is also the
// context, so LibTorch's raw_allocate/raw_deallocate (oneDNN uses them) work.
constexpr size_t kHeaderBytes = 64;

// Blocks from this size on are kept for reuse when freed (see BlockCache).
constexpr size_t kCacheMinBytes = size_t{1} << 20;
// A cached block serves a request at most 1/kCacheSlackDivisor smaller.
constexpr size_t kCacheSlackDivisor = 8;
constexpr size_t kPageBytes = 4096;

struct BlockHeader {
  size_t bytes;                    // what the caller asked for; units: bytes
  size_t capacity;                 // the whole block, header included; units: bytes
  void* base_context;              // the wrapped allocator's context
  c10::DeleterFnPtr base_deleter;  // and its deleter
};
static_assert(sizeof(BlockHeader) <= kHeaderBytes);

std::atomic<int64_t> g_current_bytes{0};
std::atomic<int64_t> g_peak_bytes{0};

void count_allocation(int64_t bytes) {
  const int64_t now = g_current_bytes.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  int64_t peak = g_peak_bytes.load(std::memory_order_relaxed);
  while (now > peak && !g_peak_bytes.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

void free_block(BlockHeader* header) {
  header->base_deleter(header->base_context);
}

// Freed large blocks, kept for the next request of about their size. A
// training step allocates the same large tensors (logits, activations,
// gathered units) every step; given back to the OS, each returns as fresh
// pages that the kernel faults in and zeroes on first touch, which measured
// 15% of a CPU step of the small preset. The cache never lets the blocks it
// holds plus the large blocks in use exceed the most that were ever in use at
// once, so it costs no memory beyond the process's own peak.
class BlockCache {
 public:
  // A cached block of at least `capacity` bytes and at most 1/8 more, or null.
  BlockHeader* take(size_t capacity) {
    const std::lock_guard lock(mutex_);
    if (!enabled_) return nullptr;
    const auto it = free_.lower_bound(capacity);
    if (it == free_.end() || it->first > capacity + capacity / kCacheSlackDivisor) return nullptr;
    BlockHeader* header = it->second;
    cached_bytes_ -= it->first;
    free_.erase(it);
    in_use_bytes_ += header->capacity;
    return header;
  }

  // Makes room for a new block of `capacity` bytes: cached blocks go back to
  // the OS, the largest first, until in use + cached + the new block fit in
  // the high-water mark (or nothing is cached).
  void reserve(size_t capacity) {
    std::vector<BlockHeader*> evicted;
    {
      const std::lock_guard lock(mutex_);
      in_use_bytes_ += capacity;
      high_water_bytes_ = std::max(high_water_bytes_, in_use_bytes_);
      while (!free_.empty() && in_use_bytes_ + cached_bytes_ > high_water_bytes_) {
        const auto largest = std::prev(free_.end());
        cached_bytes_ -= largest->first;
        evicted.push_back(largest->second);
        free_.erase(largest);
      }
    }
    for (BlockHeader* header : evicted)
      free_block(header);
  }

  // Takes a freed large block; false when the cache is off (the caller frees it).
  bool put(BlockHeader* header) {
    const std::lock_guard lock(mutex_);
    in_use_bytes_ -= header->capacity;
    if (!enabled_) return false;
    free_.emplace(header->capacity, header);
    cached_bytes_ += header->capacity;
    return true;
  }

  void forget(size_t capacity) {
    const std::lock_guard lock(mutex_);
    in_use_bytes_ -= capacity;
  }

  // Gives every cached block back to the OS; `enabled` decides whether later
  // frees are cached.
  void release(bool enabled) {
    std::multimap<size_t, BlockHeader*> blocks;
    {
      const std::lock_guard lock(mutex_);
      enabled_ = enabled;
      blocks.swap(free_);
      cached_bytes_ = 0;
    }
    for (const auto& [capacity, header] : blocks)
      free_block(header);
  }

  int64_t cached_bytes() {
    const std::lock_guard lock(mutex_);
    return static_cast<int64_t>(cached_bytes_);
  }

 private:
  std::mutex mutex_;
  bool enabled_ = true;
  std::multimap<size_t, BlockHeader*> free_;  // by capacity
  size_t cached_bytes_ = 0;                   // capacities in free_
  size_t in_use_bytes_ = 0;                   // capacities of large blocks in use
  size_t high_water_bytes_ = 0;               // the most in_use_bytes_ has been
};

BlockCache& block_cache() {
  static BlockCache* cache = new BlockCache();  // never destroyed: blocks outlive main
  return *cache;
}

void delete_tracked(void* data) {
  if (data == nullptr) return;
  auto* header = reinterpret_cast<BlockHeader*>(static_cast<char*>(data) - kHeaderBytes);
  g_current_bytes.fetch_sub(static_cast<int64_t>(header->bytes), std::memory_order_relaxed);
  if (header->capacity >= kCacheMinBytes && block_cache().put(header)) return;
  free_block(header);
}

class TrackingAllocator final : public c10::Allocator {
 public:
  explicit TrackingAllocator(c10::Allocator* base) : base_(base) {}

  c10::DataPtr allocate(size_t bytes) override {
    // Empty tensors hold no memory; the base returns a null pointer for them.
    if (bytes == 0) return base_->allocate(0);
    BlockHeader* header = nullptr;
    if (bytes + kHeaderBytes >= kCacheMinBytes) {
      const size_t capacity = (bytes + kHeaderBytes + kPageBytes - 1) / kPageBytes * kPageBytes;
      header = block_cache().take(capacity);
      if (header == nullptr) {
        block_cache().reserve(capacity);
        header = allocate_block(capacity, bytes);
      }
      header->bytes = bytes;
    } else {
      header = allocate_block(bytes + kHeaderBytes, bytes);
    }
    count_allocation(static_cast<int64_t>(bytes));
    void* data = reinterpret_cast<char*>(header) + kHeaderBytes;
    return {data, data, &delete_tracked, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &delete_tracked; }

  void copy_data(void* dest, const void* src, size_t count) const override {
    default_copy_data(dest, src, count);
  }

 private:
  // A new block from the wrapped allocator. When it fails, the cached blocks
  // are given back and the allocation is tried once more.
  BlockHeader* allocate_block(size_t capacity, size_t bytes) {
    c10::DataPtr block;
    try {
      block = base_->allocate(capacity);
    } catch (const c10::Error&) {
      block_cache().release(/*enabled=*/true);
      try {
        block = base_->allocate(capacity);
      } catch (...) {
        if (capacity >= kCacheMinBytes) block_cache().forget(capacity);
        throw;
      }
    }
    const c10::DeleterFnPtr base_deleter = block.get_deleter();
    void* base_context = block.release_context();
    return new (block.get()) BlockHeader{bytes, capacity, base_context, base_deleter};
  }

  c10::Allocator* base_;  // [not null] LibTorch's CPU allocator at installation
};

}  // namespace

void track_cpu_memory() {
  // Installed once, for the life of the process: LibTorch keeps the pointer.
  [[maybe_unused]] static const bool installed = [] {
    // The highest priority, so that no later registration bypasses the count.
    c10::SetCPUAllocator(new TrackingAllocator(c10::GetCPUAllocator()),
                         std::numeric_limits<uint8_t>::max());
    return true;
  }();
}

void set_cpu_block_cache(bool enabled) {
  block_cache().release(enabled);
}

int64_t cpu_cached_bytes() {
  return block_cache().cached_bytes();
}

MemoryStats cpu_memory_stats() {
  return {.current_bytes = g_current_bytes.load(std::memory_order_relaxed),
          .peak_bytes = g_peak_bytes.load(std::memory_order_relaxed)};
}

void reset_peak_cpu_memory() {
  g_peak_bytes.store(g_current_bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

}  // namespace muse::trainer
