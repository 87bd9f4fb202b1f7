#!/usr/bin/env bash
# Prepares .device/ so that packages/backend-cuda's tests can run on a GPU host without Node.js:
#   .device/node.xz          xz-compressed copy of this machine's node binary
#   .device/mamba_cuda.node  the built addon
#   .device/tests/*.mjs      the test files bundled to plain ES modules (tensor + backend-cuda + ssm sources inside)
#   .device/fixtures/        the transformers fixtures of packages/ssm
#   .device/run.sh           what runs there (tools/gpu/device-run.sh)
# Then run, with the device tool: run(command: "bash .device/run.sh", carry: [".device"]); logs come back in $OUT.
#   bash tools/gpu/run-cuda-tests.sh            (builds the addon first if it is missing)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
carry="$root/.device"
pkg="$root/packages/backend-cuda"
addon="$pkg/build/Release/mamba_cuda.node"

[ -f "$addon" ] || node "$pkg/scripts/build-addon.mjs"
[ -f "$addon" ] || { echo "no addon at $addon (nvcc missing?)"; exit 1; }
mkdir -p "$carry"
exclude="$root/.git/info/exclude"
if [ -f "$exclude" ] && ! grep -qx '/.device/' "$exclude"; then echo '/.device/' >> "$exclude"; fi

node_bin=$(command -v node)
if [ ! -f "$carry/node.xz" ] || [ "$node_bin" -nt "$carry/node.xz" ]; then
  echo "compressing $node_bin …"
  xz -T0 -6 -c "$node_bin" > "$carry/node.xz.tmp" && mv "$carry/node.xz.tmp" "$carry/node.xz"
fi
cp "$addon" "$carry/mamba_cuda.node"
rm -rf "$carry/tests" "$carry/fixtures"
node "$root/tools/gpu/bundle-tests.mjs" "$carry/tests"
if [ -d "$root/packages/ssm/test/fixtures" ]; then cp -r "$root/packages/ssm/test/fixtures" "$carry/fixtures"; fi
cp "$root/tools/gpu/device-run.sh" "$carry/run.sh"
du -sh "$carry"
echo 'ready: call the device tool with  command "bash .device/run.sh"  and  carry [".device"]'
