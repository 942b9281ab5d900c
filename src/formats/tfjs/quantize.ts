// Writing weights in the quantized encodings TF.js model.json supports, so a
// replacement of a quantized conv is stored as compactly as the original was
// (uint8/uint16: affine q*scale + min per tensor; float16).
import type { Quantization, WeightEntry } from './manifest.js';
import { floatEntry } from './manifest.js';
import { floatToHalf } from '../float16.js';

/**
 * A weight entry holding `values` in the encoding `like` names (undefined:
 * float32). uint8/uint16 get their own per-tensor min and scale, as the TF.js
 * converter computes them.
 */
export function encodedEntry(name: string, shape: number[], values: Float32Array, like: Quantization | undefined): WeightEntry {
  if (!like) return floatEntry(name, shape, values);
  const count = values.length;
  if (like.dtype === 'float16') {
    const bytes = new Uint8Array(count * 2);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < count; i++) view.setUint16(2 * i, floatToHalf(values[i]), true);
    return { spec: { name, shape, dtype: 'float32', quantization: { dtype: 'float16', original_dtype: 'float32' } }, bytes };
  }
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < count; i++) {
    min = Math.min(min, values[i]);
    max = Math.max(max, values[i]);
  }
  if (count === 0) min = max = 0;
  const levels = like.dtype === 'uint8' ? 255 : 65535;
  // A constant tensor still needs a non-zero scale to be valid.
  const scale = max > min ? (max - min) / levels : 1;
  const bytes = new Uint8Array(count * (like.dtype === 'uint8' ? 1 : 2));
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < count; i++) {
    const q = Math.min(levels, Math.max(0, Math.round((values[i] - min) / scale)));
    if (like.dtype === 'uint8') bytes[i] = q;
    else view.setUint16(2 * i, q, true);
  }
  return {
    spec: { name, shape, dtype: 'float32', quantization: { dtype: like.dtype, scale, min, original_dtype: 'float32' } },
    bytes,
  };
}
