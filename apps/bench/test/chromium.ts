import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

/**
 * The system Chromium, installed from Debian's packages when missing and running as root (as on CI).
 * Throws with the command to run otherwise.
 */
export function ensureChromium(): string {
  const found = CANDIDATES.find(existsSync);
  if (found) return found;
  if (process.getuid?.() === 0) {
    execFileSync('bash', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium'], { stdio: 'ignore', timeout: 600_000 });
    const installed = CANDIDATES.find(existsSync);
    if (installed) return installed;
  }
  throw new Error('Chromium is not installed and could not be installed here: run `apt-get install -y chromium` as root.');
}
