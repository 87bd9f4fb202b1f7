/**
 * Safetensors parsing and serialization from bytes (browser-safe).
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data section. Tensor data is read
 * and written as little-endian; like every JS engine we target, we assume a little-endian host, so typed-array
 * views over the bytes need no swapping.
 */

export type SafetensorsDType =
  | 'F64'
  | 'F32'
  | 'F16'
  | 'BF16'
  | 'I64'
  | 'I32'
  | 'I16'
  | 'I8'
  | 'U8'
  | 'BOOL'
  | 'U16'
  | 'U32'
  | 'U64';

export const SAFETENSORS_DTYPE_SIZES: Readonly<Record<SafetensorsDType, number>> = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
  U16: 2,
  U32: 4,
  U64: 8,
});

const KNOWN_DTYPES = Object.keys(SAFETENSORS_DTYPE_SIZES) as SafetensorsDType[];

/** The official parser's header cap. */
export const MAX_SAFETENSORS_HEADER_BYTES = 100_000_000;

/** Typed array returned for each dtype: F16/BF16/U16 are raw Uint16Array bits, BOOL is Uint8Array. */
export type SafetensorsTypedArray =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array
  | Uint32Array
  | BigUint64Array;

/** One header entry. `begin`/`end` are byte offsets relative to the start of the data section. */
export interface SafetensorsTensorInfo {
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** N: the JSON header's byte length. */
  headerLength: number;
  /** Absolute file offset of the data section (8 + N). */
  dataStart: number;
  tensors: Map<string, SafetensorsTensorInfo>;
  metadata: Record<string, string>;
}

export interface SafetensorsTensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: SafetensorsTypedArray;
}

/** Input for serialization; `data` may be any view whose byte length matches shape and dtype. */
export interface SafetensorsTensorInput {
  dtype: SafetensorsDType;
  shape: readonly number[];
  data: ArrayBufferView;
}

export type SafetensorsTensorInputs =
  | Record<string, SafetensorsTensorInput>
  | Iterable<readonly [string, SafetensorsTensorInput]>;

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

const CORRUPT = 'the file is corrupt or was written incorrectly.';

function fail(message: string): never {
  throw new SafetensorsError(message);
}

export function isSafetensorsDType(value: unknown): value is SafetensorsDType {
  return typeof value === 'string' && Object.hasOwn(SAFETENSORS_DTYPE_SIZES, value);
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  if (text === undefined) return String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function isNonNegativeInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Element count of a validated shape; a zero dimension wins over any overflow of the others. */
function shapeSize(shape: readonly number[]): number {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Reads and validates N from the first 8 bytes. Checks N against the file size and the 100 MB cap before anything
 * is allocated for the header.
 */
export function readSafetensorsHeaderLength(prefix: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8) {
    fail(`${source}: file is ${fileSize} bytes, shorter than the 8-byte safetensors header length; ${CORRUPT}`);
  }
  if (prefix.length < 8) fail(`${source}: only ${prefix.length} bytes were given; pass at least the first 8 bytes of the file.`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(fileSize - 8)) {
    fail(`${source}: header length ${n} is larger than the ${fileSize - 8} bytes after the length field; ${CORRUPT}`);
  }
  if (n > BigInt(MAX_SAFETENSORS_HEADER_BYTES)) {
    fail(`${source}: header length ${n} exceeds the ${MAX_SAFETENSORS_HEADER_BYTES}-byte limit; the file is corrupt or not a safetensors file.`);
  }
  return Number(n);
}

function parseEntry(name: string, entry: unknown, source: string): SafetensorsTensorInfo {
  const where = `${source}: tensor ${JSON.stringify(name)}`;
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    fail(`${where} must be an object with dtype, shape and data_offsets but is ${describe(entry)}; ${CORRUPT}`);
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (dtype === undefined) fail(`${where} is missing "dtype"; ${CORRUPT}`);
  if (!isSafetensorsDType(dtype)) {
    fail(`${where} has unknown dtype ${describe(dtype)}; known dtypes are ${KNOWN_DTYPES.join(', ')}.`);
  }
  if (shape === undefined) fail(`${where} is missing "shape"; ${CORRUPT}`);
  if (!Array.isArray(shape)) fail(`${where} has shape ${describe(shape)}, which is not an array; ${CORRUPT}`);
  for (const d of shape) {
    if (!isNonNegativeInt(d)) {
      fail(`${where} has shape ${describe(shape)} with dimension ${describe(d)}, which is not a non-negative integer; ${CORRUPT}`);
    }
  }
  if (offsets === undefined) fail(`${where} is missing "data_offsets"; ${CORRUPT}`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInt)) {
    fail(`${where} has data_offsets ${describe(offsets)}, which is not a pair of non-negative integers [begin, end]; ${CORRUPT}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) fail(`${where} has data_offsets [${begin}, ${end}] with end before begin; ${CORRUPT}`);
  const needed = shapeSize(shape) * SAFETENSORS_DTYPE_SIZES[dtype];
  if (end - begin !== needed) {
    fail(`${where} has data_offsets [${begin}, ${end}] but shape [${shape.join(',')}] of ${dtype} needs ${needed} bytes; ${CORRUPT}`);
  }
  return { dtype, shape: shape.slice(), begin, end };
}

function parseMetadata(value: unknown, source: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(`${source}: "__metadata__" must be an object of string values but is ${describe(value)}; ${CORRUPT}`);
  }
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      fail(`${source}: "__metadata__" field ${JSON.stringify(key)} must be a string but is ${describe(v)}; ${CORRUPT}`);
    }
  }
  // fromEntries defines own properties, so a "__proto__" key stays data, not a prototype change.
  return Object.fromEntries(Object.entries(value as Record<string, string>));
}

/** Requires the official layout: tensors sorted by offset cover the data section exactly, no holes or overlaps. */
function checkCoverage(tensors: Map<string, SafetensorsTensorInfo>, dataLength: number, source: string): void {
  for (const [name, t] of tensors) {
    if (t.end > dataLength) {
      fail(`${source}: tensor ${JSON.stringify(name)} has data_offsets [${t.begin}, ${t.end}] beyond the ${dataLength}-byte data section; the file is truncated or corrupt.`);
    }
  }
  const sorted = [...tensors].sort((a, b) => a[1].begin - b[1].begin || a[1].end - b[1].end);
  let covered = 0;
  let previous = '';
  for (const [name, t] of sorted) {
    if (t.begin < covered) {
      fail(`${source}: tensor ${JSON.stringify(name)} at data_offsets [${t.begin}, ${t.end}] overlaps tensor ${JSON.stringify(previous)} which ends at ${covered}; ${CORRUPT}`);
    }
    if (t.begin > covered) {
      fail(`${source}: data bytes [${covered}, ${t.begin}) before tensor ${JSON.stringify(name)} belong to no tensor; ${CORRUPT}`);
    }
    covered = t.end;
    previous = name;
  }
  if (covered !== dataLength) {
    fail(`${source}: data section is ${dataLength} bytes but the tensors cover only ${covered}; ${CORRUPT}`);
  }
}

/**
 * Parses and validates a safetensors header. `prefix` holds at least the first 8 + N bytes of the file (more is
 * fine); `fileSize` is the size of the whole file; `source` names it in errors.
 */
export function parseSafetensorsHeader(prefix: Uint8Array, fileSize: number, source: string): SafetensorsHeader {
  const headerLength = readSafetensorsHeaderLength(prefix, fileSize, source);
  const dataStart = 8 + headerLength;
  if (prefix.length < dataStart) {
    fail(`${source}: only ${prefix.length} header bytes were given but the header needs ${dataStart}; pass the whole header.`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(prefix.subarray(8, dataStart));
  } catch {
    fail(`${source}: header is not valid UTF-8; ${CORRUPT}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    // V8 quotes the offending input; keep raw control bytes out of the message.
    const reason = (e as Error).message.replace(/[\u0000-\u001f\u007f]/g, '?');
    fail(`${source}: header is not valid JSON (${reason}); ${CORRUPT}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    fail(`${source}: header must be a JSON object but is ${describe(json)}; ${CORRUPT}`);
  }
  const tensors = new Map<string, SafetensorsTensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(json)) {
    if (name === '__metadata__') metadata = parseMetadata(entry, source);
    else tensors.set(name, parseEntry(name, entry, source));
  }
  checkCoverage(tensors, fileSize - dataStart, source);
  return { headerLength, dataStart, tensors, metadata };
}

/** Wraps `length` elements at `byteOffset` of `buffer` (which must be aligned for the dtype). */
export function safetensorsTypedArray(
  dtype: SafetensorsDType,
  buffer: ArrayBufferLike,
  byteOffset: number,
  length: number,
): SafetensorsTypedArray {
  switch (dtype) {
    case 'F64':
      return new Float64Array(buffer, byteOffset, length);
    case 'F32':
      return new Float32Array(buffer, byteOffset, length);
    case 'F16':
    case 'BF16':
    case 'U16':
      return new Uint16Array(buffer, byteOffset, length);
    case 'I64':
      return new BigInt64Array(buffer, byteOffset, length);
    case 'I32':
      return new Int32Array(buffer, byteOffset, length);
    case 'I16':
      return new Int16Array(buffer, byteOffset, length);
    case 'I8':
      return new Int8Array(buffer, byteOffset, length);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buffer, byteOffset, length);
    case 'U32':
      return new Uint32Array(buffer, byteOffset, length);
    case 'U64':
      return new BigUint64Array(buffer, byteOffset, length);
  }
}

/** The name list used in "no tensor named" errors, shortened for huge checkpoints. */
export function safetensorsUnknownTensorMessage(source: string, name: string, names: readonly string[]): string {
  const shown = names.slice(0, 8).map((n) => JSON.stringify(n)).join(', ');
  const more = names.length > 8 ? `, ... (${names.length} in all)` : '';
  const available = names.length ? `available tensors are ${shown}${more}` : 'it holds no tensors';
  return `${source}: no tensor named ${JSON.stringify(name)}; ${available}.`;
}

export interface SafetensorsReader {
  readonly source: string;
  readonly metadata: Record<string, string>;
  names(): string[];
  has(name: string): boolean;
  info(name: string): SafetensorsTensorInfo;
  /** A view into the input bytes when suitably aligned, otherwise a copy. */
  get(name: string): SafetensorsTensor;
}

/** Parses a whole in-memory safetensors file. Returned views share memory with `bytes` when aligned. */
export function readSafetensors(bytes: Uint8Array, source = 'safetensors'): SafetensorsReader {
  const header = parseSafetensorsHeader(bytes, bytes.length, source);
  const info = (name: string): SafetensorsTensorInfo => {
    const t = header.tensors.get(name);
    if (t === undefined) throw new SafetensorsError(safetensorsUnknownTensorMessage(source, name, [...header.tensors.keys()]));
    return t;
  };
  return {
    source,
    metadata: header.metadata,
    names: () => [...header.tensors.keys()],
    has: (name) => header.tensors.has(name),
    info,
    get(name) {
      const { dtype, shape, begin, end } = info(name);
      const size = SAFETENSORS_DTYPE_SIZES[dtype];
      const offset = bytes.byteOffset + header.dataStart + begin;
      const length = (end - begin) / size;
      const data =
        offset % size === 0
          ? safetensorsTypedArray(dtype, bytes.buffer, offset, length)
          : safetensorsTypedArray(dtype, bytes.slice(offset - bytes.byteOffset, end + header.dataStart).buffer, 0, length);
      return { dtype, shape: shape.slice(), data };
    },
  };
}

/** A file laid out but not yet written: the 8 + N header bytes, then each tensor's bytes in order. */
export interface SafetensorsPlan {
  header: Uint8Array;
  tensors: { name: string; bytes: Uint8Array }[];
  totalBytes: number;
}

/** The [name, tensor] pairs of a record, a Map or any iterable of pairs, in their given order. */
export function safetensorsInputEntries(tensors: SafetensorsTensorInputs): [string, SafetensorsTensorInput][] {
  if (Symbol.iterator in tensors) {
    return Array.from(tensors as Iterable<readonly [string, SafetensorsTensorInput]>, ([n, t]) => [n, t]);
  }
  return Object.entries(tensors);
}

function validateInput(name: string, t: SafetensorsTensorInput, seen: Set<string>): Uint8Array {
  const where = `serializeSafetensors: tensor ${JSON.stringify(name)}`;
  if (typeof name !== 'string' || name === '__metadata__') {
    fail(`serializeSafetensors: ${describe(name)} cannot be used as a tensor name; rename the tensor.`);
  }
  if (seen.has(name)) fail(`${where} appears twice; tensor names must be unique.`);
  seen.add(name);
  if (!isSafetensorsDType(t?.dtype)) {
    fail(`${where} has unknown dtype ${describe(t?.dtype)}; use one of ${KNOWN_DTYPES.join(', ')}.`);
  }
  if (!Array.isArray(t.shape) || !t.shape.every(isNonNegativeInt)) {
    fail(`${where} has shape ${describe(t.shape)}; a shape must be an array of non-negative integers.`);
  }
  if (!ArrayBuffer.isView(t.data)) fail(`${where} has data that is not a typed array or DataView.`);
  const needed = shapeSize(t.shape) * SAFETENSORS_DTYPE_SIZES[t.dtype];
  if (t.data.byteLength !== needed) {
    fail(`${where} has ${t.data.byteLength} bytes of data but shape [${t.shape.join(',')}] of ${t.dtype} needs ${needed}.`);
  }
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/**
 * Lays out a file like the official writer: tensors ordered by element size (largest first), then by name, so
 * every tensor stays aligned for its dtype; header JSON padded with spaces to a multiple of 8.
 */
export function planSafetensors(tensors: SafetensorsTensorInputs, metadata?: Record<string, string>): SafetensorsPlan {
  const seen = new Set<string>();
  const entries = safetensorsInputEntries(tensors).map(([name, t]) => ({ name, t, bytes: validateInput(name, t, seen) }));
  const size = (e: (typeof entries)[number]) => SAFETENSORS_DTYPE_SIZES[e.t.dtype];
  entries.sort((a, b) => size(b) - size(a) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') fail(`serializeSafetensors: metadata field ${JSON.stringify(k)} must be a string but is ${describe(v)}.`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const e of entries) {
    const begin = offset;
    offset += e.bytes.byteLength;
    // defineProperty so a tensor named "__proto__" is kept as a normal key.
    Object.defineProperty(header, e.name, {
      value: { dtype: e.t.dtype, shape: [...e.t.shape], data_offsets: [begin, offset] },
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const withSpaces = new Uint8Array(padded).fill(0x20);
    withSpaces.set(json);
    json = withSpaces;
  }
  const head = new Uint8Array(8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(json.length), true);
  head.set(json, 8);
  return {
    header: head,
    tensors: entries.map((e) => ({ name: e.name, bytes: e.bytes })),
    totalBytes: head.length + offset,
  };
}

/** Serializes tensors (a record or [name, tensor] pairs) and optional string metadata into one buffer. */
export function serializeSafetensors(tensors: SafetensorsTensorInputs, metadata?: Record<string, string>): Uint8Array {
  const plan = planSafetensors(tensors, metadata);
  const out = new Uint8Array(plan.totalBytes);
  out.set(plan.header, 0);
  let offset = plan.header.length;
  for (const t of plan.tensors) {
    out.set(t.bytes, offset);
    offset += t.bytes.length;
  }
  return out;
}
