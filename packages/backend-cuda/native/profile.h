// Profiling mode (MAMBA_TS_CUDA_PROFILE=1 or setOption('profile', 1)): a pair of CUDA events around every op and
// every cuBLASLt call, resolved into per-label GPU times when the report is taken. Off by default: then the only
// cost is one branch per launch.
#pragma once

#include <string>
#include <vector>

namespace mcuda {

bool profiling();
void setProfiling(bool on);

/** Interned label id (stable for the process): ops are launched with one, errors and the profile name them. */
int labelId(const std::string& name);
const std::string& labelName(int id);

/** Marks the GPU work enqueued between begin and end as `label`'s. Nested ranges are recorded separately. */
int profileBegin(int label);
void profileEnd(int token);

struct ProfileRow {
  std::string label;
  long long calls;
  double gpuMs;
};

/** Waits for the stream, returns per-label totals since the last report (sorted by time) and starts over. */
std::vector<ProfileRow> profileCollect();

}  // namespace mcuda

namespace mcuda {

/** Times the enclosing scope's GPU work as `label` (a nested row of the profile) while profiling is on. */
class ProfileRange {
 public:
  explicit ProfileRange(int label) : token_(profiling() ? profileBegin(label) : -1) {}
  ~ProfileRange() {
    if (token_ >= 0) profileEnd(token_);
  }
  ProfileRange(const ProfileRange&) = delete;
  ProfileRange& operator=(const ProfileRange&) = delete;

 private:
  int token_;
};

}  // namespace mcuda

/** MCUDA_PROFILE_RANGE("scan.backward"): a nested profile row for the rest of the scope (label interned once). */
#define MCUDA_PROFILE_CAT2(a, b) a##b
#define MCUDA_PROFILE_CAT(a, b) MCUDA_PROFILE_CAT2(a, b)
#define MCUDA_PROFILE_RANGE(name)                                                         \
  static const int MCUDA_PROFILE_CAT(mcudaLabel_, __LINE__) = ::mcuda::labelId("  " name); \
  ::mcuda::ProfileRange MCUDA_PROFILE_CAT(mcudaRange_, __LINE__)(MCUDA_PROFILE_CAT(mcudaLabel_, __LINE__))
