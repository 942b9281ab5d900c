// The typed contract every backend module implements (native addon, WASM).
// Arguments are validated in TypeScript (src/validate.ts) before they get
// here; the C++ side re-checks every length against the shapes it is given.

export type BackendName = 'native' | 'wasm';

/** 0 = OIHW [n][c][kh][kw] (ONNX, PyTorch), 1 = HWIO [kh][kw][c][n] (TF.js, Keras). */
export type LayoutCode = 0 | 1;

export interface WeightsArgs {
  weights: Float32Array;
  layout: LayoutCode;
  n: number;
  c: number;
  kh: number;
  kw: number;
}

export interface DacArgs extends WeightsArgs {
  rank: number;
  /** [c*rank][kh*kw] */
  depthwise: Float32Array;
  /** [n][c*rank] */
  pointwise: Float32Array;
  /** [c][min(n, kh*kw)], or null when not wanted */
  singular: Float32Array | null;
  threads: number;
}

export interface SpatialArgs extends WeightsArgs {
  width: number;
  /** [width][c][kh] */
  vertical: Float32Array;
  /** [n][width][kw] */
  horizontal: Float32Array;
  /** [min(c*kh, n*kw)] or null */
  singular: Float32Array | null;
  threads: number;
}

export interface ChannelArgs extends WeightsArgs {
  width: number;
  /** [width][c][kh][kw] */
  first: Float32Array;
  /** [n][width] */
  second: Float32Array;
  /** [min(n, c*kh*kw)] or null */
  singular: Float32Array | null;
  threads: number;
}

export interface ConvGeometry {
  batch: number;
  inH: number;
  inW: number;
  inC: number;
  kh: number;
  kw: number;
  strideH: number;
  strideW: number;
  dilationH: number;
  dilationW: number;
  padTop: number;
  padLeft: number;
  padBottom: number;
  padRight: number;
  outH: number;
  outW: number;
  outC: number;
}

/** 0 = none, 1 = ReLU, 2 = ReLU6 */
export type ActivationCode = 0 | 1 | 2;

export interface DwPwArgs {
  geometry: ConvGeometry;
  rank: number;
  input: Float32Array;
  depthwise: Float32Array;
  pointwise: Float32Array;
  bias: Float32Array | null;
  output: Float32Array;
  activation: ActivationCode;
  threads: number;
}

export interface Conv2DArgs {
  geometry: ConvGeometry;
  input: Float32Array;
  /** OIHW [outC][inC][kh][kw] */
  weights: Float32Array;
  bias: Float32Array | null;
  output: Float32Array;
  activation: ActivationCode;
  threads: number;
}

/** c = op(a) op(b), row-major doubles: op(a) is m x k, op(b) is k x n, c is m x n (written). */
export interface GemmArgs {
  m: number;
  n: number;
  k: number;
  a: Float64Array;
  transA: boolean;
  b: Float64Array;
  transB: boolean;
  c: Float64Array;
}

/** In place: a (m x m, symmetric, lower triangle read) becomes its lower Cholesky factor; ridge * mean diagonal is added first. */
export interface CholeskyArgs {
  m: number;
  a: Float64Array;
  ridge: number;
}

/**
 * In place: b (rows x k) = b * op(L_k)^-1, L_k the leading k x k block of the
 * lower triangular m x m matrix l; transpose: each row x of b becomes L_k^-1 x,
 * else L_k^-T x.
 */
export interface TriangularSolveArgs {
  m: number;
  l: Float64Array;
  k: number;
  rows: number;
  b: Float64Array;
  transpose: boolean;
}

/** values (length m, written): the eigenvalues of the symmetric m x m matrix a (lower triangle read), descending. */
export interface SymmetricEigenvaluesArgs {
  m: number;
  a: Float64Array;
  values: Float64Array;
}

export interface RawBackendInfo {
  version: string;
  /** e.g. "x86_64 avx512f avx2 fma sse4.1", "aarch64 neon", "wasm32 simd128" */
  isa: string;
  dwpwVariant: string;
  dwpwVariants: string;
  conv2dVariant: string;
  conv2dVariants: string;
  hardwareThreads: number;
}

export interface Binding {
  readonly name: BackendName;
  info(): RawBackendInfo;
  decomposeDac(args: DacArgs): void;
  decomposeDacBatch(layers: DacArgs[], threads: number): void;
  decomposeSpatial(args: SpatialArgs): void;
  decomposeChannel(args: ChannelArgs): void;
  /** variant: null = best for this CPU */
  dwpw(args: DwPwArgs, variant: string | null): void;
  conv2d(args: Conv2DArgs, variant: string | null): void;
  gemm(args: GemmArgs): void;
  cholesky(args: CholeskyArgs): void;
  triangularSolve(args: TriangularSolveArgs): void;
  symmetricEigenvalues(args: SymmetricEigenvaluesArgs): void;
}
