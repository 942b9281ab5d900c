// Deterministic pseudo-random numbers, so generated inputs (dac compare's
// samples, latency probes, test and bench weights) are reproducible from a seed.

/** Uniform numbers in [0, 1) from a 32-bit seed (mulberry32). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` uniform values in [-scale, scale) from a 32-bit seed (mulberry32). */
export function seededValues(count: number, seed: number, scale = 1): Float32Array {
  const next = mulberry32(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (next() * 2 - 1) * scale;
  return out;
}

/**
 * Uniform numbers in [-1, 1) from a 32-bit seed (xorshift32). The kernel and
 * DacConv2D tests and bench/layers.ts draw their inputs from it: their
 * tolerances were measured on these sequences, so it stays beside mulberry32.
 */
export function signedUniform(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 2 ** 32) * 2 - 1;
  };
}
