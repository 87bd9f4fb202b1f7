#include "cublaslt.h"

#include <dlfcn.h>

#include "common.h"

namespace mcuda {
namespace {

template <class Fn>
bool bind(void* lib, const char* name, Fn& fn, std::string& missing) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!fn) missing += std::string(missing.empty() ? "" : ", ") + name;
  return fn != nullptr;
}

}  // namespace

CublasLt loadCublasLt(const std::vector<std::string>& candidates) {
  std::string tried;
  for (const std::string& candidate : candidates) {
    void* lib = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* why = dlerror();
      tried += "\n  " + candidate + ": " + (why ? why : "not loadable");
      continue;
    }
    CublasLt lt;
    lt.path = candidate;
    std::string missing;
    bind(lib, "cublasLtCreate", lt.create, missing);
    bind(lib, "cublasLtDestroy", lt.destroy, missing);
    bind(lib, "cublasLtGetVersion", lt.getVersion, missing);
    bind(lib, "cublasLtMatmulDescCreate", lt.descCreate, missing);
    bind(lib, "cublasLtMatmulDescDestroy", lt.descDestroy, missing);
    bind(lib, "cublasLtMatmulDescSetAttribute", lt.descSetAttribute, missing);
    bind(lib, "cublasLtMatrixLayoutCreate", lt.layoutCreate, missing);
    bind(lib, "cublasLtMatrixLayoutDestroy", lt.layoutDestroy, missing);
    bind(lib, "cublasLtMatrixLayoutSetAttribute", lt.layoutSetAttribute, missing);
    bind(lib, "cublasLtMatmulPreferenceCreate", lt.prefCreate, missing);
    bind(lib, "cublasLtMatmulPreferenceDestroy", lt.prefDestroy, missing);
    bind(lib, "cublasLtMatmulPreferenceSetAttribute", lt.prefSetAttribute, missing);
    bind(lib, "cublasLtMatmulAlgoGetHeuristic", lt.heuristic, missing);
    bind(lib, "cublasLtMatmul", lt.matmul, missing);
    if (!missing.empty()) {
      tried += "\n  " + candidate + ": missing symbols " + missing;
      dlclose(lib);
      continue;
    }
    std::string optional;
    bind(lib, "cublasLtGetStatusString", lt.statusString, optional);
    lt::Status status = lt.create(&lt.handle);
    if (status != 0) {
      tried += "\n  " + candidate + ": cublasLtCreate returned status " + std::to_string(status);
      dlclose(lib);
      continue;
    }
    lt.version = lt.getVersion();
    return lt;  // the library stays loaded for the life of the process
  }
  throw Failure("cuBLASLt could not be loaded; tried:" + tried +
                "\nInstall the CUDA toolkit's cuBLAS (libcublasLt.so) or point MAMBA_TS_CUBLASLT at the library file.");
}

std::string statusText(const CublasLt& lib, lt::Status status) {
  std::string text = "status " + std::to_string(status);
  if (lib.statusString) {
    const char* s = lib.statusString(status);
    if (s) text += std::string(" (") + s + ")";
  }
  return text;
}

}  // namespace mcuda
