// Device memory: a caching allocator over cudaMalloc, and a pool of pinned host staging buffers.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <map>
#include <unordered_map>
#include <vector>

namespace mcuda {

/**
 * Keeps freed blocks for reuse instead of returning them to CUDA (cudaFree synchronises the device). Reuse is safe
 * without events because all work runs on one stream, in order. Live bytes count what callers asked for; reserved
 * bytes are what CUDA has given us (live blocks, their rounding and the cache).
 */
class DeviceAllocator {
 public:
  /** nullptr for 0 bytes; throws Failure naming the request and the memory in use when the device is full. */
  void* allocate(size_t bytes);
  void release(void* ptr);
  /** Returns cached blocks to CUDA. */
  void emptyCache();

  size_t liveBytes() const { return live_; }
  size_t peakBytes() const { return peak_; }
  size_t reservedBytes() const { return reserved_; }
  size_t cachedBytes() const { return cached_; }
  size_t liveBlocks() const { return used_.size(); }
  void resetPeak() { peak_ = live_; }

  /**
   * Private pools for CUDA graphs. While a pool is open, every block handed out belongs to it for the pool's
   * lifetime: a captured graph replays its kernels on those addresses, so they must never go to other tensors.
   * Blocks released meanwhile go back to their pool (later captures into it may reuse them, as the graph itself
   * did); when the pool is closed for good, its free blocks return to the shared cache and the live ones follow
   * when released.
   */
  int openPool();
  /** Stops routing new allocations to the open pool (its blocks stay its own). */
  void suspendPool();
  void destroyPool(int pool);

 private:
  struct Block {
    size_t size;       // bytes obtained from cudaMalloc
    size_t requested;  // bytes the caller asked for
    int pool;          // owning graph pool, or 0 for the shared cache
  };
  struct Pool {
    std::multimap<size_t, void*> free;
  };
  void* takeCached(std::multimap<size_t, void*>& from, size_t size);
  void* mallocOrThrow(size_t size, size_t requested);
  void cache(void* ptr, size_t size);

  std::multimap<size_t, void*> free_;  // cached blocks by size
  std::unordered_map<void*, Block> used_;
  std::unordered_map<void*, size_t> cachedSize_;
  std::unordered_map<int, Pool> pools_;
  int openPool_ = 0, nextPool_ = 1;
  size_t live_ = 0, peak_ = 0, reserved_ = 0, cached_ = 0;
};

/** A pinned host buffer and the event after which the device no longer touches it. */
struct PinnedBlock {
  void* ptr = nullptr;
  size_t size = 0;
  cudaEvent_t done = nullptr;
  bool pending = false;  // `done` recorded and maybe not reached yet
};

/** Pinned staging buffers for asynchronous copies, reused once their last copy has completed. */
class PinnedPool {
 public:
  explicit PinnedPool(size_t cacheLimit) : limit_(cacheLimit) {}
  ~PinnedPool();
  /** A block of at least `bytes`, not used by any pending copy. May wait for an old copy when the cache is full. */
  PinnedBlock* acquire(size_t bytes);
  /** Gives the block back; `stream` work enqueued so far may still read or write it (an event guards reuse). */
  void releaseAfter(PinnedBlock* block, cudaStream_t stream);
  /** Gives back a block whose copies have all completed. */
  void releaseNow(PinnedBlock* block);

 private:
  void freeBlock(PinnedBlock* block);
  std::vector<PinnedBlock*> free_;
  size_t limit_;
  size_t total_ = 0;
};

}  // namespace mcuda
