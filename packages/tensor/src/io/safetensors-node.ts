/**
 * Node-only safetensors file IO: lazy per-tensor reads from large files, sharded checkpoints, atomic writes.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  SAFETENSORS_DTYPE_SIZES,
  SafetensorsError,
  parseSafetensorsHeader,
  planSafetensors,
  readSafetensorsHeaderLength,
  safetensorsInputEntries,
  safetensorsTypedArray,
  safetensorsUnknownTensorMessage,
} from './safetensors.js';
import type {
  SafetensorsHeader,
  SafetensorsPlan,
  SafetensorsTensor,
  SafetensorsTensorInfo,
  SafetensorsTensorInputs,
} from './safetensors.js';

/** What both a single file and a sharded checkpoint offer. */
export interface SafetensorsCheckpoint {
  /** The file, index file or directory the checkpoint was opened from. */
  readonly source: string;
  readonly metadata: Record<string, string>;
  names(): string[];
  has(name: string): boolean;
  info(name: string): SafetensorsTensorInfo;
  /** Path of the .safetensors file that holds `name`. */
  fileOf(name: string): string;
  /** Reads just this tensor's bytes into a fresh, aligned buffer. */
  get(name: string): Promise<SafetensorsTensor>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const SINGLE_FILE = 'model.safetensors';
const INDEX_FILE = 'model.safetensors.index.json';
// Node refuses single reads/writes above 2 GiB, so big tensors go in pieces.
const IO_CHUNK = 1 << 30;

async function readExactly(fh: FileHandle, into: Uint8Array, position: number, source: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const length = Math.min(into.length - done, IO_CHUNK);
    const { bytesRead } = await fh.read(into, done, length, position + done);
    if (bytesRead === 0) {
      throw new SafetensorsError(`${source}: file ended at byte ${position + done} while ${into.length} bytes from ${position} were expected; was it truncated or modified while open?`);
    }
    done += bytesRead;
  }
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, done, Math.min(bytes.length - done, IO_CHUNK));
    done += bytesWritten;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** One .safetensors file; only its header is read on open, tensors are read one at a time on demand. */
export class SafetensorsFile implements SafetensorsCheckpoint {
  private constructor(
    readonly path: string,
    readonly fileSize: number,
    private readonly header: SafetensorsHeader,
    private handle: FileHandle | undefined,
  ) {}

  static async open(path: string): Promise<SafetensorsFile> {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const lengthBytes = new Uint8Array(Math.min(8, size));
      await readExactly(fh, lengthBytes, 0, path);
      const headerLength = readSafetensorsHeaderLength(lengthBytes, size, path);
      const prefix = new Uint8Array(8 + headerLength);
      prefix.set(lengthBytes);
      await readExactly(fh, prefix.subarray(8), 8, path);
      return new SafetensorsFile(path, size, parseSafetensorsHeader(prefix, size, path), fh);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  get source(): string {
    return this.path;
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  /** Absolute file offset where the data section starts. */
  get dataStart(): number {
    return this.header.dataStart;
  }

  names(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): SafetensorsTensorInfo {
    const t = this.header.tensors.get(name);
    if (t === undefined) throw new SafetensorsError(safetensorsUnknownTensorMessage(this.path, name, this.names()));
    return t;
  }

  fileOf(name: string): string {
    this.info(name);
    return this.path;
  }

  async get(name: string): Promise<SafetensorsTensor> {
    const { dtype, shape, begin, end } = this.info(name);
    if (this.handle === undefined) {
      throw new SafetensorsError(`${this.path}: cannot read tensor ${JSON.stringify(name)} because the file was closed.`);
    }
    // A fresh ArrayBuffer starts at offset 0, so it is aligned for every dtype.
    const bytes = new Uint8Array(end - begin);
    await readExactly(this.handle, bytes, this.header.dataStart + begin, this.path);
    const data = safetensorsTypedArray(dtype, bytes.buffer, 0, bytes.length / SAFETENSORS_DTYPE_SIZES[dtype]);
    return { dtype, shape: shape.slice(), data };
  }

  async close(): Promise<void> {
    const fh = this.handle;
    this.handle = undefined;
    await fh?.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

class ShardedCheckpoint implements SafetensorsCheckpoint {
  constructor(
    readonly source: string,
    readonly metadata: Record<string, string>,
    private readonly weightMap: Map<string, SafetensorsFile>,
    private readonly shards: SafetensorsFile[],
  ) {}

  names(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  private shard(name: string): SafetensorsFile {
    const file = this.weightMap.get(name);
    if (file === undefined) throw new SafetensorsError(safetensorsUnknownTensorMessage(this.source, name, this.names()));
    return file;
  }

  info(name: string): SafetensorsTensorInfo {
    return this.shard(name).info(name);
  }

  fileOf(name: string): string {
    return this.shard(name).path;
  }

  async get(name: string): Promise<SafetensorsTensor> {
    return this.shard(name).get(name);
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function openIndex(indexPath: string, dir: string): Promise<SafetensorsCheckpoint> {
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (e) {
    throw new SafetensorsError(`${indexPath}: cannot read the shard index (${(e as Error).message}).`);
  }
  if (!isPlainObject(index) || !isPlainObject(index.weight_map)) {
    throw new SafetensorsError(`${indexPath}: shard index must be a JSON object with a "weight_map" object of tensor name -> shard file.`);
  }
  const metadata: Record<string, string> = {};
  if (isPlainObject(index.metadata)) {
    for (const [k, v] of Object.entries(index.metadata)) {
      Object.defineProperty(metadata, k, { value: typeof v === 'string' ? v : JSON.stringify(v), enumerable: true, writable: true, configurable: true });
    }
  }
  const byFile = new Map<string, string>(); // shard file -> first tensor that uses it, for error messages
  for (const [tensor, file] of Object.entries(index.weight_map)) {
    // Shards must sit next to the index: no paths, so an index cannot point anywhere else on disk.
    if (typeof file !== 'string' || file === '' || /[/\\]/.test(file) || file === '.' || file === '..') {
      throw new SafetensorsError(`${indexPath}: weight_map entry for tensor ${JSON.stringify(tensor)} must be a shard file name in the same directory but is ${JSON.stringify(file)}.`);
    }
    if (!byFile.has(file)) byFile.set(file, tensor);
  }
  const opened = new Map<string, SafetensorsFile>();
  try {
    for (const [file, tensor] of byFile) {
      const path = join(dir, file);
      if (!(await exists(path))) {
        throw new SafetensorsError(`${indexPath}: shard file ${JSON.stringify(file)} (holding tensor ${JSON.stringify(tensor)}) does not exist in ${dir}; the checkpoint download is incomplete.`);
      }
      opened.set(file, await SafetensorsFile.open(path));
    }
    const weightMap = new Map<string, SafetensorsFile>();
    for (const [tensor, file] of Object.entries(index.weight_map as Record<string, string>)) {
      const shard = opened.get(file)!;
      if (!shard.has(tensor)) {
        throw new SafetensorsError(`${indexPath}: weight_map puts tensor ${JSON.stringify(tensor)} in ${JSON.stringify(file)}, but that shard has no such tensor.`);
      }
      weightMap.set(tensor, shard);
    }
    return new ShardedCheckpoint(indexPath, metadata, weightMap, [...opened.values()]);
  } catch (e) {
    await Promise.all([...opened.values()].map((s) => s.close()));
    throw e;
  }
}

/**
 * Opens a checkpoint: a directory holding `model.safetensors` (preferred) or `model.safetensors.index.json` plus
 * shards, or a path to either file directly. Only headers are read; tensors load on `get`.
 */
export async function openCheckpoint(path: string): Promise<SafetensorsCheckpoint> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch {
    throw new SafetensorsError(`${path}: no such checkpoint file or directory.`);
  }
  if (!isDir) {
    if (path.endsWith('.index.json')) return openIndex(path, dirname(path));
    return SafetensorsFile.open(path);
  }
  const single = join(path, SINGLE_FILE);
  if (await exists(single)) return SafetensorsFile.open(single);
  const index = join(path, INDEX_FILE);
  if (await exists(index)) return openIndex(index, path);
  throw new SafetensorsError(`${path}: directory has neither ${SINGLE_FILE} nor ${INDEX_FILE}; point at a Hugging Face checkpoint directory.`);
}

/** Writes `chunks` to a temp file next to `path`, fsyncs it and renames it into place; removes it on failure. */
async function writeAtomic(path: string, chunks: Iterable<Uint8Array>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'wx');
    for (const chunk of chunks) await writeAll(fh, chunk);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
  } catch (e) {
    await fh?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw e;
  }
}

function* planChunks(plan: SafetensorsPlan): Iterable<Uint8Array> {
  yield plan.header;
  for (const t of plan.tensors) yield t.bytes;
}

/** Writes one .safetensors file atomically, streaming tensor bytes without building the whole file in memory. */
export async function writeSafetensorsFile(
  path: string,
  tensors: SafetensorsTensorInputs,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeAtomic(path, planChunks(planSafetensors(tensors, metadata)));
}

export interface ShardedWriteOptions {
  /** Shards are filled in the given tensor order up to this many data bytes; a bigger tensor gets its own shard. */
  maxShardBytes: number;
  /** `__metadata__` written into every shard (Hugging Face loaders expect `{ format: 'pt' }`). */
  metadata?: Record<string, string>;
}

export interface ShardedWriteResult {
  indexPath: string;
  shardPaths: string[];
  /** Sum of all tensor data bytes, as recorded in the index. */
  totalSize: number;
}

/**
 * Writes `model-0000k-of-0000N.safetensors` shards and `model.safetensors.index.json` into `dir` (created if
 * needed). Everything is validated before the first write; each file is written atomically, the index last.
 */
export async function writeShardedCheckpoint(
  dir: string,
  tensors: SafetensorsTensorInputs,
  options: ShardedWriteOptions,
): Promise<ShardedWriteResult> {
  const { maxShardBytes, metadata } = options;
  if (!Number.isSafeInteger(maxShardBytes) || maxShardBytes <= 0) {
    throw new SafetensorsError(`writeShardedCheckpoint: maxShardBytes must be a positive integer but is ${maxShardBytes}.`);
  }
  const entries = safetensorsInputEntries(tensors);
  const groups: (typeof entries)[] = [[]];
  let groupBytes = 0;
  for (const entry of entries) {
    const bytes = ArrayBuffer.isView(entry[1]?.data) ? entry[1].data.byteLength : 0;
    const current = groups[groups.length - 1];
    if (current.length > 0 && groupBytes + bytes > maxShardBytes) {
      groups.push([entry]);
      groupBytes = bytes;
    } else {
      current.push(entry);
      groupBytes += bytes;
    }
  }
  const seen = new Set<string>();
  for (const [name] of entries) {
    if (seen.has(name)) throw new SafetensorsError(`writeShardedCheckpoint: tensor ${JSON.stringify(name)} appears twice; tensor names must be unique.`);
    seen.add(name);
  }
  const pad = (n: number) => String(n).padStart(5, '0');
  const files = groups.map((_, i) => `model-${pad(i + 1)}-of-${pad(groups.length)}.safetensors`);
  const plans = groups.map((g) => planSafetensors(g, metadata));

  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  const sortedNames: [string, string][] = [];
  plans.forEach((plan, i) => {
    for (const t of plan.tensors) {
      sortedNames.push([t.name, files[i]]);
      totalSize += t.bytes.length;
    }
  });
  sortedNames.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [name, file] of sortedNames) {
    Object.defineProperty(weightMap, name, { value: file, enumerable: true, writable: true, configurable: true });
  }

  await mkdir(dir, { recursive: true });
  const shardPaths = files.map((f) => join(dir, f));
  for (let i = 0; i < plans.length; i++) await writeAtomic(shardPaths[i], planChunks(plans[i]));
  const indexPath = join(dir, INDEX_FILE);
  const index = JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n';
  await writeAtomic(indexPath, [new TextEncoder().encode(index)]);
  return { indexPath, shardPaths, totalSize };
}
