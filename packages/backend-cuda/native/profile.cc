#include "profile.h"

#include <algorithm>
#include <unordered_map>

#include "common.h"
#include "context.h"

namespace mcuda {
namespace {

struct Range {
  int label;
  cudaEvent_t start, end;
};

struct Profiler {
  bool on = false;
  std::vector<std::string> names;
  std::unordered_map<std::string, int> ids;
  std::vector<cudaEvent_t> pool;  // events handed out so far this round: pool[0, used)
  size_t used = 0;
  std::vector<Range> ranges;
};

Profiler& profiler() {
  static Profiler* p = new Profiler();
  return *p;
}

cudaEvent_t nextEvent() {
  Profiler& p = profiler();
  if (p.used == p.pool.size()) {
    cudaEvent_t e;
    check(cudaEventCreate(&e), "cudaEventCreate (profile)");
    p.pool.push_back(e);
  }
  return p.pool[p.used++];
}

}  // namespace

bool profiling() { return profiler().on; }
void setProfiling(bool on) { profiler().on = on; }

int labelId(const std::string& name) {
  Profiler& p = profiler();
  auto it = p.ids.find(name);
  if (it != p.ids.end()) return it->second;
  int id = static_cast<int>(p.names.size());
  p.names.push_back(name);
  p.ids.emplace(name, id);
  return id;
}

int profileBegin(int label) {
  Profiler& p = profiler();
  Range r{label, nextEvent(), nullptr};
  check(cudaEventRecord(r.start, stream()), "cudaEventRecord (profile)");
  p.ranges.push_back(r);
  return static_cast<int>(p.ranges.size()) - 1;
}

void profileEnd(int token) {
  Profiler& p = profiler();
  if (token < 0 || token >= static_cast<int>(p.ranges.size())) return;
  p.ranges[token].end = nextEvent();
  check(cudaEventRecord(p.ranges[token].end, stream()), "cudaEventRecord (profile)");
}

const std::string& labelName(int id) {
  static const std::string unknown = "(unknown)";
  Profiler& p = profiler();
  return id >= 0 && id < static_cast<int>(p.names.size()) ? p.names[id] : unknown;
}

std::vector<ProfileRow> profileCollect() {
  Profiler& p = profiler();
  check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize (profile)");
  std::unordered_map<int, ProfileRow> byLabel;
  for (const Range& r : p.ranges) {
    if (!r.end) continue;
    float ms = 0.0f;
    check(cudaEventElapsedTime(&ms, r.start, r.end), "cudaEventElapsedTime (profile)");
    ProfileRow& row = byLabel.try_emplace(r.label, ProfileRow{p.names[r.label], 0, 0.0}).first->second;
    row.calls++;
    row.gpuMs += ms;
  }
  p.ranges.clear();
  p.used = 0;
  std::vector<ProfileRow> rows;
  for (auto& [_, row] : byLabel) rows.push_back(row);
  std::sort(rows.begin(), rows.end(), [](const ProfileRow& a, const ProfileRow& b) { return a.gpuMs > b.gpuMs; });
  return rows;
}

}  // namespace mcuda
