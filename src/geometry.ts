// Convolution geometry, in one place: shapes and their bounds, output sizes,
// padding, the largest rank of each decomposition, and the weight layouts.
// The kernels, the decompositions, cost accounting, the format readers and
// writers and the TF.js layer all ask here, so a conv's output size or a
// method's largest rank cannot come out differently in two of them.
import { DacError, type ErrorContext } from './errors.js';
import type { ConvLayerInfo, Method } from './model/types.js';

/** A conv's weight shape: n output channels, c input channels, a kh x kw kernel. */
export interface ConvShape {
  /** output channels */
  n: number;
  /** input channels */
  c: number;
  kh: number;
  kw: number;
}

/** A conv as it sits in a model: its shape and how it slides over its input (a subset of ConvLayerInfo). */
export type LayerGeometry = Pick<
  ConvLayerInfo,
  'name' | 'n' | 'c' | 'kh' | 'kw' | 'groups' | 'strides' | 'dilations' | 'pads' | 'inH' | 'inW' | 'outH' | 'outW'
>;

/**
 * Largest size, channel count, stride, dilation or padding taken anywhere
 * (arguments and model files alike). No real network comes near it; larger
 * is a corrupt field, refused before it is multiplied into an allocation.
 */
export const MAX_DIM = 1 << 24;
/** Largest kernel side. */
export const MAX_KERNEL = 4096;
/** Most elements in one tensor: the native side indexes with int32. */
export const MAX_ELEMENTS = 2 ** 31 - 1;

/**
 * 'same' (TF/Keras: output = ceil(in / stride), the extra pixel of an odd
 * total padding at the bottom/right), 'valid' (no padding), or explicit
 * [top, left, bottom, right].
 */
export type Padding = 'same' | 'valid' | readonly [number, number, number, number];

/** An integer in min..max: EINVAL if it is not an integer at all, ERANGE if it is out of range. */
export function checkInt(value: unknown, field: string, min: number, max: number, ctx: ErrorContext = {}): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new DacError('EINVAL', `${field} must be an integer, got ${String(value)}`, { ...ctx, field });
  }
  if (value < min || value > max) {
    throw new DacError('ERANGE', `${field} must be in ${min}..${max}, got ${value}`, { ...ctx, field });
  }
  return value;
}

/** A {n, c, kh, kw} from a caller: each within its bound, the weights within MAX_ELEMENTS. */
export function checkShape(shape: unknown, ctx: ErrorContext = {}): ConvShape {
  if (typeof shape !== 'object' || shape === null) {
    throw new DacError('EINVAL', 'shape must be an object {n, c, kh, kw}', { ...ctx, field: 'shape' });
  }
  const s = shape as Record<string, unknown>;
  const out = {
    n: checkInt(s.n, 'shape.n', 1, MAX_DIM, ctx),
    c: checkInt(s.c, 'shape.c', 1, MAX_DIM, ctx),
    kh: checkInt(s.kh, 'shape.kh', 1, MAX_KERNEL, ctx),
    kw: checkInt(s.kw, 'shape.kw', 1, MAX_KERNEL, ctx),
  };
  if (out.n * out.c * out.kh * out.kw > MAX_ELEMENTS) {
    throw new DacError('ERANGE', `shape ${out.n}x${out.c}x${out.kh}x${out.kw} has more than 2^31-1 elements`, {
      ...ctx,
      field: 'shape',
    });
  }
  return out;
}

/**
 * A model's conv: every size a positive integer within MAX_DIM, and groups
 * dividing both channel counts. Errors name the layer and the field.
 */
export function checkLayerGeometry(layer: LayerGeometry, ctx: ErrorContext = {}): void {
  const where = { ...ctx, layer: layer.name };
  for (const f of ['n', 'c', 'kh', 'kw', 'groups', 'inH', 'inW', 'outH', 'outW'] as const) checkInt(layer[f], f, 1, MAX_DIM, where);
  if (layer.c % layer.groups !== 0 || layer.n % layer.groups !== 0) {
    throw new DacError('EINVAL', `groups ${layer.groups} must divide both c=${layer.c} and n=${layer.n}`, { ...where, field: 'groups' });
  }
}

/**
 * Output length of one axis: floor((in + before + after - span) / stride) + 1
 * with span = dilation * (kernel - 1) + 1; 0 when the kernel does not fit the
 * padded input (never negative, so callers test `< 1` and nothing else).
 */
export function convOutputSize(
  inSize: number,
  kernel: number,
  stride: number,
  dilation: number,
  padBefore: number,
  padAfter: number,
): number {
  const room = inSize + padBefore + padAfter - dilation * (kernel - 1) - 1;
  return room < 0 ? 0 : Math.floor(room / stride) + 1;
}

/**
 * TF/Keras 'same' padding of one axis, [before, after]: just enough for
 * ceil(in / stride) outputs, the extra pixel of an odd total after (bottom,
 * right). ONNX SAME_LOWER is the same pair swapped.
 */
export function samePadding(inSize: number, kernel: number, stride: number, dilation: number): [number, number] {
  const out = Math.ceil(inSize / stride);
  const total = Math.max((out - 1) * stride + (kernel - 1) * dilation + 1 - inSize, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

/** Output length of one axis under 'same' (ceil(in / stride)) or 'valid' padding; 0 when a valid kernel does not fit. */
export function paddedOutputSize(inSize: number, kernel: number, stride: number, dilation: number, padding: 'same' | 'valid'): number {
  const [before, after] = padding === 'same' ? samePadding(inSize, kernel, stride, dilation) : [0, 0];
  return convOutputSize(inSize, kernel, stride, dilation, before, after);
}

/** Resolves a padding spec into [top, left, bottom, right]; explicit pads must be integers in 0..MAX_DIM. */
export function resolvePadding(
  padding: Padding | undefined,
  inH: number,
  inW: number,
  kh: number,
  kw: number,
  strides: readonly [number, number] = [1, 1],
  dilations: readonly [number, number] = [1, 1],
  ctx: ErrorContext = {},
): [number, number, number, number] {
  if (padding === undefined || padding === 'valid') return [0, 0, 0, 0];
  if (padding === 'same') {
    const [top, bottom] = samePadding(inH, kh, strides[0], dilations[0]);
    const [left, right] = samePadding(inW, kw, strides[1], dilations[1]);
    return [top, left, bottom, right];
  }
  if (Array.isArray(padding) && padding.length === 4) {
    const names = ['top', 'left', 'bottom', 'right'];
    return padding.map((p, i) => checkInt(p, `padding.${names[i]}`, 0, MAX_DIM, ctx)) as [number, number, number, number];
  }
  throw new DacError('EINVAL', `padding must be 'same', 'valid' or [top, left, bottom, right], got ${JSON.stringify(padding)}`, {
    ...ctx,
    field: 'padding',
  });
}

/**
 * Size of the kh x 1 stage of the spatial decomposition: it carries the
 * vertical stride, padding and dilation, so it is outH tall and inW wide.
 */
export function spatialIntermediateSize(layer: LayerGeometry): { h: number; w: number } {
  return {
    h: convOutputSize(layer.inH, layer.kh, layer.strides[0], layer.dilations[0], layer.pads[0], layer.pads[2]),
    w: layer.inW,
  };
}

/**
 * Rows and columns of the matrix each method factors, from a conv's weights:
 * DAC each input channel's n x (kh*kw) slice, spatial the (c*kh) x (n*kw)
 * rearrangement, channel the n x (c*kh*kw) matrix.
 */
function factoredMatrix(shape: ConvShape, method: Method): [number, number] {
  const { n, c, kh, kw } = shape;
  switch (method) {
    case 'dac':
      return [n, kh * kw];
    case 'spatial':
      return [c * kh, n * kw];
    case 'channel':
      return [n, c * kh * kw];
  }
}

/**
 * Largest meaningful rank (DAC) or width (spatial, channel): the rank of the
 * matrix the method factors, min(rows, cols): DAC min(n, kh*kw), spatial
 * min(c*kh, n*kw), channel min(n, c*kh*kw). The native decompositions
 * refuse anything larger with the same bounds.
 */
export function maxRank(shape: ConvShape, method: Method): number {
  return Math.min(...factoredMatrix(shape, method));
}

/**
 * Largest rank (DAC) or width a written replacement may carry: max(rows,
 * cols) of the factored matrix. Past maxRank a factorization gains nothing,
 * but the pair of layers is still valid, and exact, up to the trivial
 * factorizations (an identity on either side) that hand-built replacements
 * use: DAC one depthwise filter per tap (kh*kw) or per output (n), spatial
 * c*kh or n*kw, channel n or c*kh*kw. Beyond those, nothing at all.
 */
export function maxReplacementRank(shape: ConvShape, method: Method): number {
  return Math.max(...factoredMatrix(shape, method));
}

/**
 * A rank (DAC: field 'rank') or width (spatial, channel: 'width') in 1..max,
 * max being maxRank or maxReplacementRank. EINVAL if it is not an integer,
 * ERANGE if it is out of range.
 */
export function checkRank(value: unknown, method: Method, max: number, ctx: ErrorContext = {}): number {
  const field = method === 'dac' ? 'rank' : 'width';
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    const code = typeof value === 'number' && Number.isInteger(value) ? 'ERANGE' : 'EINVAL';
    throw new DacError(code, `${field} must be an integer in 1..${max}, got ${String(value)}`, { ...ctx, field });
  }
  return value;
}

/** Side of the square tiles the layout conversions below copy in. */
const TILE = 16;

/**
 * OIHW [cout][cin][kh][kw] -> HWIO [kh][kw][cin][cout]. DAC's depthwise
 * [c*r][kh*kw] is OIHW with cout = c*r, cin = 1, and its HWIO is Keras'
 * depthwise [kh][kw][c][r]; a 1x1's [n][cin] is OIHW with kh = kw = 1.
 */
export function oihwToHwio(w: Float32Array, cout: number, cin: number, kh: number, kw: number): Float32Array {
  const out = new Float32Array(w.length);
  reorder(w, out, cout, cin, kh * kw, true);
  return out;
}

/**
 * HWIO [kh][kw][cin][cout] -> OIHW [cout][cin][kh][kw]: the inverse of
 * oihwToHwio. Into `out` when given (as long as `w`, not overlapping it).
 */
export function hwioToOihw(w: Float32Array, kh: number, kw: number, cin: number, cout: number, out = new Float32Array(w.length)): Float32Array {
  reorder(w, out, cout, cin, kh * kw, false);
  return out;
}

/**
 * hwioToOihw and oihwToHwio into `out`, saying whether every value is
 * finite: a format that turns weights (a kernel read from a file, a
 * replacement's factors) checks them on the way, not in a pass of its own.
 */
export function hwioToOihwFinite(w: Float32Array, kh: number, kw: number, cin: number, cout: number, out: Float32Array): boolean {
  return reorder(w, out, cout, cin, kh * kw, false);
}

export function oihwToHwioFinite(w: Float32Array, cout: number, cin: number, kh: number, kw: number, out: Float32Array): boolean {
  return reorder(w, out, cout, cin, kh * kw, true);
}

/**
 * The copy between OIHW index (o * cin + i) * taps + t and HWIO index
 * (t * cin + i) * cout + o, either way, in tiles of outputs x inputs so that
 * both sides stay in cache (a plain loop strides through one of them).
 * Values move as their bits (the bytes are kept exactly, NaN payloads too),
 * and the copy says at no cost to it whether all were finite: a float32 is
 * NaN or infinite exactly when its exponent bits are all set, that is when
 * adding one at the exponent's lowest bit carries into the sign bit.
 */
function reorder(w: Float32Array, out: Float32Array, cout: number, cin: number, taps: number, toHwio: boolean): boolean {
  const from = new Int32Array(w.buffer, w.byteOffset, w.length);
  const to = new Int32Array(out.buffer, out.byteOffset, out.length);
  let carry = 0;
  for (let i0 = 0; i0 < cin; i0 += TILE)
    for (let o0 = 0; o0 < cout; o0 += TILE) {
      const i1 = Math.min(cin, i0 + TILE);
      const o1 = Math.min(cout, o0 + TILE);
      for (let t = 0; t < taps; t++)
        for (let i = i0; i < i1; i++) {
          const hwio = (t * cin + i) * cout;
          if (toHwio) {
            for (let o = o0; o < o1; o++) {
              const v = from[(o * cin + i) * taps + t];
              to[hwio + o] = v;
              carry |= (v & 0x7f800000) + 0x00800000;
            }
          } else {
            for (let o = o0; o < o1; o++) {
              const v = from[hwio + o];
              to[(o * cin + i) * taps + t] = v;
              carry |= (v & 0x7f800000) + 0x00800000;
            }
          }
        }
    }
  return carry >= 0;
}
