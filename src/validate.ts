// Array checks done in TypeScript before anything crosses into C++ (the
// shape and integer checks live in geometry.ts).
import { DacError, type ErrorContext } from './errors.js';

/** A Float32Array of exactly `length` finite values. */
export function checkFloats(value: unknown, length: number, field: string, ctx: ErrorContext = {}): Float32Array {
  const a = checkFloatView(value, length, field, ctx);
  if (!allFinite(a)) {
    const i = a.findIndex((v) => !Number.isFinite(v));
    throw new DacError('ENONFINITE', `${field}[${i}] is ${a[i]} (weights must be finite)`, { ...ctx, field });
  }
  return a;
}

/**
 * A float32 is NaN or infinite exactly when its exponent bits are all set:
 * one integer test per value on the same bytes (a Float32Array's offset is a
 * multiple of 4), about 1.9x faster than summing v - v over VGG16's 14.7M
 * weights; the index is looked up only on failure.
 */
export function allFinite(a: Float32Array): boolean {
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length);
  for (let i = 0; i < bits.length; i++) if ((bits[i] & 0x7f800000) === 0x7f800000) return false;
  return true;
}

/** A Float32Array of exactly `length` values whose contents are not scanned (activations, an output buffer, factors a check has already passed). */
export function checkFloatView(value: unknown, length: number, field: string, ctx: ErrorContext = {}): Float32Array {
  if (!(value instanceof Float32Array)) {
    throw new DacError('EINVAL', `${field} must be a Float32Array`, { ...ctx, field });
  }
  if (value.length !== length) {
    throw new DacError('ESHAPE', `${field} has ${value.length} values, expected ${length}`, { ...ctx, field });
  }
  return value;
}

/**
 * A Float64Array of exactly `length` values. Values are not scanned: NaN and
 * infinity propagate through products and solves as IEEE arithmetic says.
 */
export function checkDoubles(value: unknown, length: number, field: string, ctx: ErrorContext = {}): Float64Array {
  if (!(value instanceof Float64Array)) throw new DacError('EINVAL', `${field} must be a Float64Array`, { ...ctx, field });
  if (value.length !== length) {
    throw new DacError('ESHAPE', `${field} has ${value.length} values, expected ${length}`, { ...ctx, field });
  }
  return value;
}

/** An output may not share memory with any input of the same call (the kernels read inputs while writing it). */
export function checkNoOverlap(
  output: Float32Array | Float64Array,
  field: string,
  inputs: Array<[Float32Array | Float64Array | null, string]>,
  ctx: ErrorContext = {},
): void {
  for (const [input, name] of inputs) {
    if (!input || input.buffer !== output.buffer) continue;
    if (output.byteOffset < input.byteOffset + input.byteLength && input.byteOffset < output.byteOffset + output.byteLength) {
      throw new DacError('EALIAS', `${field} must not share memory with ${name}`, { ...ctx, field });
    }
  }
}
