#include "allocator.h"

#include <cstdio>
#include <string>

#include "common.h"

namespace mcuda {
namespace {

constexpr size_t kMiB = size_t(1) << 20;

/** Rounds a request so that nearby sizes share cached blocks. */
size_t roundedSize(size_t bytes) {
  size_t unit = bytes < kMiB ? 512 : (bytes < 64 * kMiB ? 128 * 1024 : 2 * kMiB);
  return (bytes + unit - 1) / unit * unit;
}

/** The largest cached block worth handing out for a request (to bound the waste). */
size_t largestUsable(size_t size) { return size < kMiB ? 2 * size : size + size / 8; }

std::string human(size_t bytes) {
  char buf[64];
  if (bytes >= (size_t(1) << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / double(size_t(1) << 30));
  else if (bytes >= kMiB) std::snprintf(buf, sizeof buf, "%.2f MiB", bytes / double(kMiB));
  else if (bytes >= 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", bytes / 1024.0);
  else std::snprintf(buf, sizeof buf, "%zu B", bytes);
  return buf;
}

}  // namespace

void* DeviceAllocator::takeCached(std::multimap<size_t, void*>& from, size_t size) {
  auto it = from.lower_bound(size);
  if (it == from.end() || it->first > largestUsable(size)) return nullptr;
  void* ptr = it->second;
  cached_ -= it->first;
  from.erase(it);
  return ptr;
}

void* DeviceAllocator::allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  size_t size = roundedSize(bytes);
  void* ptr = nullptr;
  if (openPool_) ptr = takeCached(pools_[openPool_].free, size);
  if (!ptr) ptr = takeCached(free_, size);
  if (ptr) {
    size = cachedSize_[ptr];
    cachedSize_.erase(ptr);
  } else {
    ptr = mallocOrThrow(size, bytes);
  }
  used_[ptr] = Block{size, bytes, openPool_};
  live_ += bytes;
  if (live_ > peak_) peak_ = live_;
  return ptr;
}

void DeviceAllocator::cache(void* ptr, size_t size) {
  free_.emplace(size, ptr);
  cachedSize_[ptr] = size;
  cached_ += size;
}

int DeviceAllocator::openPool() {
  if (openPool_) throw Failure("cuda: a graph capture is already in progress; finish it first");
  openPool_ = nextPool_++;
  pools_[openPool_];
  return openPool_;
}

void DeviceAllocator::suspendPool() { openPool_ = 0; }

void DeviceAllocator::destroyPool(int id) {
  if (openPool_ == id) openPool_ = 0;
  auto it = pools_.find(id);
  if (it == pools_.end()) return;
  for (auto& [size, ptr] : it->second.free) free_.emplace(size, ptr);
  pools_.erase(it);
  for (auto& [ptr, block] : used_) {
    if (block.pool == id) block.pool = 0;
  }
}

void* DeviceAllocator::mallocOrThrow(size_t size, size_t requested) {
  void* ptr = nullptr;
  cudaError_t err = cudaMalloc(&ptr, size);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it
    size_t cachedBefore = cached_;
    emptyCache();
    err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t freeBytes = 0, totalBytes = 0;
      cudaMemGetInfo(&freeBytes, &totalBytes);
      throw Failure("cuda: out of device memory allocating " + human(requested) + " (" + std::to_string(requested) +
                    " bytes); live tensors hold " + human(live_) + " in " + std::to_string(used_.size()) +
                    " buffers (peak " + human(peak_) + "), the allocator's cache held " + human(cachedBefore) +
                    " (released and retried); the device reports " + human(freeBytes) + " free of " +
                    human(totalBytes) + ". Free tensors (dispose/tidy) or use smaller batches or sequences.");
    }
  }
  check(err, "cudaMalloc");
  reserved_ += size;
  return ptr;
}

void DeviceAllocator::release(void* ptr) {
  if (!ptr) return;
  auto it = used_.find(ptr);
  if (it == used_.end()) throw Failure("internal: cuda buffer freed twice or never allocated");
  live_ -= it->second.requested;
  size_t size = it->second.size;
  auto pool = pools_.find(it->second.pool);
  used_.erase(it);
  if (pool == pools_.end()) {
    cache(ptr, size);
    return;
  }
  pool->second.free.emplace(size, ptr);
  cachedSize_[ptr] = size;
  cached_ += size;
}

void DeviceAllocator::emptyCache() {
  for (auto& [size, ptr] : free_) {
    cudaFree(ptr);
    reserved_ -= size;
  }
  free_.clear();
  cachedSize_.clear();
  cached_ = 0;
}

PinnedPool::~PinnedPool() {
  for (PinnedBlock* b : free_) freeBlock(b);
}

void PinnedPool::freeBlock(PinnedBlock* block) {
  if (block->pending) cudaEventSynchronize(block->done);
  cudaFreeHost(block->ptr);
  cudaEventDestroy(block->done);
  total_ -= block->size;
  delete block;
}

PinnedBlock* PinnedPool::acquire(size_t bytes) {
  PinnedBlock* best = nullptr;
  size_t bestIndex = 0;
  for (size_t i = 0; i < free_.size(); i++) {
    PinnedBlock* b = free_[i];
    if (b->size < bytes || b->size > 4 * bytes + 65536) continue;
    if (b->pending) {
      if (cudaEventQuery(b->done) != cudaSuccess) continue;
      b->pending = false;
    }
    if (!best || b->size < best->size) {
      best = b;
      bestIndex = i;
    }
  }
  if (best) {
    free_.erase(free_.begin() + bestIndex);
    return best;
  }
  // Over the cache limit: drop idle blocks (waiting for their copies) before allocating more.
  while (total_ + bytes > limit_ && !free_.empty()) {
    PinnedBlock* oldest = free_.front();
    free_.erase(free_.begin());
    freeBlock(oldest);
  }
  auto* block = new PinnedBlock();
  block->size = bytes < 65536 ? 65536 : bytes;
  cudaError_t err = cudaHostAlloc(&block->ptr, block->size, cudaHostAllocDefault);
  if (err != cudaSuccess) {
    delete block;
    check(err, "cudaHostAlloc (pinned staging buffer)");
  }
  check(cudaEventCreateWithFlags(&block->done, cudaEventDisableTiming), "cudaEventCreate");
  total_ += block->size;
  return block;
}

void PinnedPool::releaseAfter(PinnedBlock* block, cudaStream_t stream) {
  check(cudaEventRecord(block->done, stream), "cudaEventRecord");
  block->pending = true;
  free_.push_back(block);
}

void PinnedPool::releaseNow(PinnedBlock* block) {
  block->pending = false;
  free_.push_back(block);
}

}  // namespace mcuda
