// The part of the public Backend (src/index.ts) that planning and replacement
// building use; any backend object (native, wasm) satisfies it structurally.
// Planning always runs on one: its spectra are the backend's SVDs and its
// channel-sized linear algebra (c x c covariances, the (c*r)^2 DAC refit) the
// backend's double-precision GEMM, Cholesky and triangular solves.

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
  matmul(
    a: Float64Array,
    b: Float64Array,
    m: number,
    n: number,
    k: number,
    opts?: { transA?: boolean; transB?: boolean; context?: DecomposeOptions['context'] },
  ): Float64Array;
  cholesky(a: Float64Array, m: number, ridge: number, context?: DecomposeOptions['context']): Float64Array;
  solveTriangular(
    l: Float64Array,
    m: number,
    b: Float64Array,
    rows: number,
    opts?: { k?: number; transpose?: boolean; context?: DecomposeOptions['context'] },
  ): Float64Array;
  symmetricEigenvalues(a: Float64Array, m: number, context?: DecomposeOptions['context']): Float64Array;
}
