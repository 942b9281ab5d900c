// IDX files (the MNIST / Fashion-MNIST container), plain or gzip-compressed:
// big-endian magic 0x0000 <type> <ndims>, ndims big-endian uint32 sizes, then
// the data row-major. Only unsigned-byte data (type 0x08) is read, which is
// what image and label files use.
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { DacError } from '../errors.js';

export interface IdxImages {
  count: number;
  rows: number;
  cols: number;
  /** uint8 pixels [count][rows][cols] */
  pixels: Uint8Array;
}

const UBYTE = 0x08;

function readMaybeGzip(file: string): Buffer {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(file);
  } catch (err) {
    throw new DacError('ENOENT', `cannot read IDX file: ${(err as Error).message}`, { model: file });
  }
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return zlib.gunzipSync(raw);
    } catch (err) {
      throw new DacError('EFORMAT', `corrupt gzip data: ${(err as Error).message}`, { model: file });
    }
  }
  return raw;
}

function parseIdx(file: string, buf: Buffer): { dims: number[]; data: Uint8Array } {
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) {
    throw new DacError('EFORMAT', 'not an IDX file (bad magic number)', { model: file });
  }
  if (buf[2] !== UBYTE) {
    throw new DacError('EFORMAT', `IDX data type 0x${buf[2].toString(16)} is not unsigned byte (0x08)`, { model: file });
  }
  const ndims = buf[3];
  if (ndims < 1 || buf.length < 4 + 4 * ndims) {
    throw new DacError('EFORMAT', `IDX header with ${ndims} dimensions is truncated`, { model: file });
  }
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const size = dims.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * ndims;
  if (buf.length - start < size) {
    throw new DacError('EFORMAT', `IDX data has ${buf.length - start} bytes, dims ${dims.join('x')} need ${size}`, {
      model: file,
    });
  }
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + start, size) };
}

/** An IDX images file: dims [count, rows, cols]. */
export function readIdxImages(file: string): IdxImages {
  const { dims, data } = parseIdx(file, readMaybeGzip(file));
  if (dims.length !== 3) {
    throw new DacError('EFORMAT', `IDX images need 3 dimensions, got ${dims.length}`, { model: file });
  }
  return { count: dims[0], rows: dims[1], cols: dims[2], pixels: data };
}

/** An IDX labels file: dims [count]. */
export function readIdxLabels(file: string): Uint8Array {
  const { dims, data } = parseIdx(file, readMaybeGzip(file));
  if (dims.length !== 1) {
    throw new DacError('EFORMAT', `IDX labels need 1 dimension, got ${dims.length}`, { model: file });
  }
  return data;
}

/** An IDX unsigned-byte file (gzip-compressed when `gzip`), e.g. for a subset of a dataset. */
export function encodeIdx(dims: number[], data: Uint8Array, gzip = true): Buffer {
  const size = dims.reduce((a, b) => a * b, 1);
  if (data.length !== size) {
    throw new DacError('ESHAPE', `data has ${data.length} bytes, dims ${dims.join('x')} need ${size}`, { field: 'data' });
  }
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = UBYTE;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  const raw = Buffer.concat([header, Buffer.from(data.buffer, data.byteOffset, data.length)]);
  return gzip ? zlib.gzipSync(raw, { level: 9 }) : raw;
}

/**
 * Images as float32 NHWC [count][rows][cols][1], normalized (pixel/255 - mean)/std
 * (Fashion-MNIST train statistics by default, as the fashion-vgg model expects).
 */
export function normalizeImages(images: IdxImages, mean = 0.286, std = 0.353, count = images.count): Float32Array {
  const n = Math.min(count, images.count) * images.rows * images.cols;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (images.pixels[i] / 255 - mean) / std;
  return out;
}
