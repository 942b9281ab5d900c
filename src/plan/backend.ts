// The part of the public Backend (src/index.ts) that planning and replacement
// building use; any backend object (native, wasm) satisfies it structurally.

export interface KernelShape {
  n: number;
  c: number;
  kh: number;
  kw: number;
}

export interface DecomposeOptions {
  layout?: 'OIHW' | 'HWIO';
  threads?: number;
  /** Names for error messages. */
  context?: { model?: string; layer?: string; field?: string };
}

export interface DecomposeBackend {
  readonly name: string;
  decomposeDac(
    weights: Float32Array,
    shape: KernelShape,
    rank: number,
    opts?: DecomposeOptions,
  ): { depthwise: Float32Array; pointwise: Float32Array; singular: Float32Array };
  decomposeSpatial(
    weights: Float32Array,
    shape: KernelShape,
    width: number,
    opts?: DecomposeOptions,
  ): { vertical: Float32Array; horizontal: Float32Array; singular: Float32Array };
  decomposeChannel(
    weights: Float32Array,
    shape: KernelShape,
    width: number,
    opts?: DecomposeOptions,
  ): { first: Float32Array; second: Float32Array; singular: Float32Array };
}
