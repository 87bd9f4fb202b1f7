#!/usr/bin/env bash
# Prepares .device/ to run tools/gpu/profile.ts on a GPU host without Node.js (see run-cuda-tests.sh):
#   .device/node.xz, .device/mamba_cuda.node, .device/profile/profile.mjs (bundled), .device/profile.sh.
# Then: run(command: "bash .device/profile.sh [--batch 8 --seq 1024 --decode-batch 64]", carry: [".device"]);
# the tables come back in $OUT/profile.txt (and on stdout).
set -euo pipefail
source "$(dirname "$0")/carry.sh"
rm -rf "$carry/profile"
node "$root/tools/gpu/bundle-app.mjs" "$root/tools/gpu/profile.ts" "$carry/profile"
cat > "$carry/profile.sh" <<'RUN'
#!/usr/bin/env bash
# On the GPU host: unpack node (once), run the bundled profile with the carried addon; tables go to $OUT.
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp/mamba-ts-profile-out}
mkdir -p "$out"
[ -x /tmp/node ] || { xz -dc "$here/node.xz" > /tmp/node && chmod +x /tmp/node; }
export MAMBA_TS_CUDA_ADDON="$here/mamba_cuda.node"
cd "$out" && OUT="$out" /tmp/node "$here/profile/profile.mjs" "$@" 2>&1
RUN
du -sh "$carry"
