#!/usr/bin/env bash
# Prepares .device/ to run the bench app on a GPU host without Node.js (see run-cuda-tests.sh for the test runner):
#   .device/node.xz, .device/mamba_cuda.node, .device/bench/main.mjs (bundled), .device/bench.sh (what runs there).
# Then: run(command: "bash .device/bench.sh --preset 130m --backend cuda", carry: [".device"]); reports come back in $OUT.
set -euo pipefail
source "$(dirname "$0")/carry.sh"
rm -rf "$carry/bench"
node "$root/tools/gpu/bundle-app.mjs" "$root/apps/bench/src/main.ts" "$carry/bench"
cat > "$carry/bench.sh" <<'RUN'
#!/usr/bin/env bash
# On the GPU host: unpack node, run the bundled bench with the carried addon; reports and the log go to $OUT.
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/mamba-ts-bench-out}
mkdir -p "$out"
xz -dc "$here/node.xz" > /tmp/node && chmod +x /tmp/node
export MAMBA_TS_CUDA_ADDON="$here/mamba_cuda.node"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
/tmp/node "$here/bench/main.mjs" --out "$out/report" "$@" 2>&1 | tee "$out/bench.log"
exit "${PIPESTATUS[0]}"
RUN
du -sh "$carry"
