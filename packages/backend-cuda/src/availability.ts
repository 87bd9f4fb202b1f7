import { cublasLtCandidates, loadAddon, type InitInfo, type NativeAddon, type ProbeInfo } from './native.js';

export interface CudaStatus {
  available: boolean;
  /** Why the backend cannot be used (null when it can): addon not built, no driver, no GPU, no cuBLASLt. */
  reason: string | null;
  addonPath: string;
  device?: ProbeInfo;
  init?: InitInfo;
}

let status: CudaStatus | null = null;
let addon: NativeAddon | null = null;

/**
 * Finds out, once per process, whether the cuda backend can run here: loads the addon, probes the driver and the
 * GPU, then creates the stream and loads cuBLASLt. Never throws. MAMBA_TS_CUDA_DISABLE=1 turns it off.
 */
export function cudaStatus(): CudaStatus {
  if (status) return status;
  status = detect();
  return status;
}

function detect(): CudaStatus {
  const loaded = loadAddon();
  if (process.env.MAMBA_TS_CUDA_DISABLE === '1') {
    return { available: false, reason: 'disabled by MAMBA_TS_CUDA_DISABLE=1', addonPath: loaded.path };
  }
  if (!loaded.addon) return { available: false, reason: loaded.reason, addonPath: loaded.path };
  const device = loaded.addon.probe();
  if (device.deviceCount === 0) return { available: false, reason: device.error, addonPath: loaded.path, device };
  try {
    const init = loaded.addon.init(cublasLtCandidates());
    addon = loaded.addon;
    if (process.env.MAMBA_TS_CUDA_SYNC === '1') addon.setOption('debugSync', 1);
    if (process.env.MAMBA_TS_CUDA_TF32 === '1') addon.setOption('tf32', 1);
    return { available: true, reason: null, addonPath: loaded.path, device, init };
  } catch (e) {
    const message = (e as Error).message;
    const reason = message.startsWith('cuBLASLt') ? `no cuBLASLt: ${message}` : message;
    return { available: false, reason, addonPath: loaded.path, device };
  }
}

/** True when the cuda backend can be registered and used on this machine. */
export function isAvailable(): boolean {
  return cudaStatus().available;
}

/** Why the cuda backend is unavailable, or null when it is available. */
export function unavailableReason(): string | null {
  return cudaStatus().reason;
}

/** The initialised addon; throws with the reason when the backend is unavailable. */
export function nativeAddon(): NativeAddon {
  const s = cudaStatus();
  if (!s.available || !addon) throw new Error(`The cuda backend is unavailable: ${s.reason}.`);
  return addon;
}
