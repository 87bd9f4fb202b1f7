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
source "$(dirname "$0")/carry.sh"
pkg="$root/packages/backend-cuda"
rm -rf "$carry/tests" "$carry/fixtures"
node "$root/tools/gpu/bundle-tests.mjs" "$carry/tests"
if [ -d "$root/packages/ssm/test/fixtures" ]; then cp -r "$root/packages/ssm/test/fixtures" "$carry/fixtures"; fi
cp "$root/tools/gpu/device-run.sh" "$carry/run.sh"
du -sh "$carry"
echo 'ready: call the device tool with  command "bash .device/run.sh"  and  carry [".device"]'
