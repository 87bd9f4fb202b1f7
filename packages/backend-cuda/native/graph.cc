#include "graph.h"

#include <string>
#include <unordered_map>

#include "context.h"
#include "profile.h"
#include "runtime.h"

namespace mcuda {
namespace {

struct Graph {
  cudaGraphExec_t exec;
  int pool;
};

struct Capture {
  bool active = false;
  int pool = 0;
  bool profiling = false;  // restored afterwards: profiling events cannot be resolved inside a graph
};

Capture current;
std::unordered_map<int, Graph> graphs;
int nextGraph = 1;

void finish() {
  allocator().suspendPool();
  setProfiling(current.profiling);
  current.active = false;
}

}  // namespace

bool capturing() { return current.active; }

void captureBegin() {
  ensureUsable();
  if (current.active) throw Failure("cuda: a graph capture is already in progress; finish it first");
  int pool = allocator().openPool();
  cudaError_t err = cudaStreamBeginCapture(stream(), cudaStreamCaptureModeRelaxed);
  if (err != cudaSuccess) {
    allocator().destroyPool(pool);
    check(err, "cudaStreamBeginCapture");
  }
  current = Capture{true, pool, profiling()};
  setProfiling(false);
}

int captureEnd() {
  if (!current.active) throw Failure("cuda: no graph capture is in progress");
  int pool = current.pool;
  finish();
  cudaGraph_t graph = nullptr;
  cudaError_t err = cudaStreamEndCapture(stream(), &graph);
  cudaGraphExec_t exec = nullptr;
  if (err == cudaSuccess) err = cudaGraphInstantiate(&exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  if (err != cudaSuccess) {
    cudaGetLastError();
    allocator().destroyPool(pool);
    throw Failure(std::string("cuda: the captured work could not become a graph: ") + cudaGetErrorString(err) + " (" +
                  cudaGetErrorName(err) + "); only kernel launches can be captured (no reads, syncs or uploads)");
  }
  int id = nextGraph++;
  graphs[id] = Graph{exec, pool};
  return id;
}

void captureAbort() {
  if (!current.active) return;
  int pool = current.pool;
  finish();
  cudaGraph_t graph = nullptr;
  cudaStreamEndCapture(stream(), &graph);
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();
  allocator().destroyPool(pool);
}

void graphLaunch(int id) {
  ensureUsable();
  auto it = graphs.find(id);
  if (it == graphs.end()) throw Failure("cuda: graph " + std::to_string(id) + " was destroyed or never captured");
  check(cudaGraphLaunch(it->second.exec, stream()), "cudaGraphLaunch");
}

void graphDestroy(int id) {
  auto it = graphs.find(id);
  if (it == graphs.end()) return;
  cudaStreamSynchronize(stream());
  cudaGraphExecDestroy(it->second.exec);
  allocator().destroyPool(it->second.pool);
  graphs.erase(it);
}

}  // namespace mcuda
