import { rename, rm, writeFile } from 'node:fs/promises';

/** Writes a file atomically: a temporary file in the same folder, then a rename. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new Error(`${path}: cannot write (${(e as Error).message}).`);
  }
}
