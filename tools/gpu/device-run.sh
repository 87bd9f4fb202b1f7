#!/usr/bin/env bash
# Runs on the GPU host (no Node.js there): unpacks the carried node, points the package at the carried addon and
# runs the bundled tests with Node's own test runner. Logs go to $OUT (spec.log, tap.log, gpu.txt).
#   bash .device/run.sh [file-filter]     e.g. bash .device/run.sh conformance
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/mamba-ts-gpu-out}
mkdir -p "$out"

xz -dc "$here/node.xz" > /tmp/node && chmod +x /tmp/node || { echo "cannot unpack node"; exit 2; }
export MAMBA_TS_CUDA_ADDON="$here/mamba_cuda.node"
export MAMBA_TS_SSM_FIXTURES="$here/fixtures"

# cuBLASLt: the package searches CUDA_HOME/CUDA_PATH, LD_LIBRARY_PATH and the standard paths itself; only when none
# of those has it, look elsewhere on this host (e.g. a Python wheel's nvidia/*/lib) and say where it was found.
found=""
for d in ${CUDA_HOME:+$CUDA_HOME/lib64} ${CUDA_PATH:+$CUDA_PATH/lib64} ${LD_LIBRARY_PATH:+${LD_LIBRARY_PATH//:/ }} /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu; do
  ls "$d"/libcublasLt.so* >/dev/null 2>&1 && { found="$d"; break; }
done
if [ -z "$found" ] && [ -z "${MAMBA_TS_CUBLASLT:-}" ]; then
  lib=$(find / -xdev \( -path /proc -o -path /sys \) -prune -o -name 'libcublasLt.so.1[23]' -print 2>/dev/null | head -1)
  [ -n "$lib" ] && export MAMBA_TS_CUBLASLT="$lib"
fi
{
  echo "node $(/tmp/node --version)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  echo "cuBLASLt: ${found:-${MAMBA_TS_CUBLASLT:-not found}}"
} | tee "$out/gpu.txt"

cd "$here/tests"
files=$(ls *.test.mjs | grep -- "${1:-.}")
/tmp/node --test --test-concurrency=1 --test-timeout=600000 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$out/tap.log" $files 2>&1 | tee "$out/spec.log"
rc=${PIPESTATUS[0]}
# Without a filter, the kernel benchmarks follow (their JSON and tables, one after another, in benches.txt).
if [ -z "${1:-}" ]; then
  for b in bench-mixer bench-scan bench-gemm bench-conv-norm bench-elementwise bench-decode; do
    [ -f "$b.mjs" ] && { echo "== $b"; /tmp/node "$b.mjs" 2>&1; }
  done | tee "$out/benches.txt"
fi
exit "$rc"
