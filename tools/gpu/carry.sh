# Sourced by the run-*.sh scripts: sets root and carry, and puts the compressed node binary and the built addon
# into .device/ (ignored by git), building the addon first if it is missing.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
carry="$root/.device"
addon="$root/packages/backend-cuda/build/Release/mamba_cuda.node"
[ -f "$addon" ] || node "$root/packages/backend-cuda/scripts/build-addon.mjs"
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
