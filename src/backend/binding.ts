// The binding contract, TypeScript side: every op the backends export,
// declared once (OPS). The argument types below are derived from it, the
// native and WASM marshalling walk it, and both loaders check it against the
// C++ op tables (native/ops.h) so a binary built from other sources is
// refused whole. Backend (backend.ts) validates every argument before a call
// gets here; the C++ side re-checks every length against the shapes it is
// given.

export type BackendName = 'native' | 'wasm';

/** 0 = OIHW [n][c][kh][kw] (ONNX, PyTorch), 1 = HWIO [kh][kw][c][n] (TF.js, Keras). */
export type LayoutCode = 0 | 1;

/** 0 = none, 1 = ReLU, 2 = ReLU6 */
export type ActivationCode = 0 | 1 | 2;

/**
 * What a field holds: an int32, a double, a boolean, a Float32Array, a
 * Float32Array or null, a Float64Array, a string or null (a kernel variant),
 * or a nested object of fields.
 */
export type FieldKind = 'int' | 'number' | 'bool' | 'f32' | 'f32?' | 'f64' | 'name';

/** in: read by C++; out: written by C++ (its contents are not passed in); inout: both. */
export type Direction = 'in' | 'out' | 'inout';

interface Field<K extends FieldKind, T> {
  readonly kind: K;
  readonly dir: Direction;
  /** The TypeScript type of the value; a type-level tag only. */
  readonly value?: T;
}

interface Struct<S extends Fields> {
  readonly kind: 'struct';
  readonly fields: S;
}

type Fields = { readonly [name: string]: Field<FieldKind, unknown> | Struct<Fields> };

/** The JS value of each field; variant names may be left out (the best variant). */
export type ArgsOf<D extends Fields> = {
  -readonly [K in keyof D as D[K] extends Field<'name', unknown> ? never : K]: D[K] extends Struct<infer S>
    ? ArgsOf<S>
    : D[K] extends Field<FieldKind, infer T>
      ? T
      : never;
} & { -readonly [K in keyof D as D[K] extends Field<'name', unknown> ? K : never]?: string | null };

const int = <T extends number = number>(): Field<'int', T> => ({ kind: 'int', dir: 'in' });
const number = (): Field<'number', number> => ({ kind: 'number', dir: 'in' });
const bool = (): Field<'bool', boolean> => ({ kind: 'bool', dir: 'in' });
const f32 = (dir: Direction = 'in'): Field<'f32', Float32Array> => ({ kind: 'f32', dir });
const f32OrNull = (dir: Direction = 'in'): Field<'f32?', Float32Array | null> => ({ kind: 'f32?', dir });
const f64 = (dir: Direction = 'in'): Field<'f64', Float64Array> => ({ kind: 'f64', dir });
const name = (): Field<'name', string | null> => ({ kind: 'name', dir: 'in' });
const struct = <S extends Fields>(fields: S): Struct<S> => ({ kind: 'struct', fields });

/** A conv's weights as the decompositions read them. */
const WEIGHTS = {
  weights: f32(),
  layout: int<LayoutCode>(),
  n: int(),
  c: int(),
  kh: int(),
  kw: int(),
};

/** dac::ConvGeometry: output size derived by the caller, re-checked in C++. */
const GEOMETRY = {
  batch: int(),
  inH: int(),
  inW: int(),
  inC: int(),
  kh: int(),
  kw: int(),
  strideH: int(),
  strideW: int(),
  dilationH: int(),
  dilationW: int(),
  padTop: int(),
  padLeft: int(),
  padBottom: int(),
  padRight: int(),
  outH: int(),
  outW: int(),
  outC: int(),
};

/** Every op, by the name both backends export it under; fields as the C++ params structs name them. */
export const OPS = {
  /** DAC: per input channel, a rank-r SVD of its n x (kh*kw) slice. */
  decomposeDac: {
    ...WEIGHTS,
    rank: int(),
    /** [c*rank][kh*kw] */
    depthwise: f32('out'),
    /** [n][c*rank] */
    pointwise: f32('out'),
    /** [c][min(n, kh*kw)], or null when not wanted */
    singular: f32OrNull('out'),
    threads: int(),
    /** DAC kernel variant ('ref', 'avx2', 'wasm_simd'); null: the best */
    variant: name(),
  },
  decomposeSpatial: {
    ...WEIGHTS,
    width: int(),
    /** [width][c][kh] */
    vertical: f32('out'),
    /** [n][width][kw] */
    horizontal: f32('out'),
    /** [min(c*kh, n*kw)] or null */
    singular: f32OrNull('out'),
    threads: int(),
  },
  decomposeChannel: {
    ...WEIGHTS,
    width: int(),
    /** [width][c][kh][kw] */
    first: f32('out'),
    /** [n][width] */
    second: f32('out'),
    /** [min(n, c*kh*kw)] or null */
    singular: f32OrNull('out'),
    threads: int(),
  },
  /** The fused depthwise(multiplier rank) + pointwise conv, NHWC. */
  dwpw: {
    geometry: struct(GEOMETRY),
    rank: int(),
    input: f32(),
    depthwise: f32(),
    pointwise: f32(),
    bias: f32OrNull(),
    output: f32('out'),
    activation: int<ActivationCode>(),
    threads: int(),
    /** kernel variant; null: the best for this CPU */
    variant: name(),
  },
  /** A dense conv, NHWC, weights OIHW [outC][inC][kh][kw]. */
  conv2d: {
    geometry: struct(GEOMETRY),
    input: f32(),
    weights: f32(),
    bias: f32OrNull(),
    output: f32('out'),
    activation: int<ActivationCode>(),
    threads: int(),
    variant: name(),
  },
  /** c = op(a) op(b), row-major doubles: op(a) is m x k, op(b) is k x n, c is m x n. */
  gemm: { m: int(), n: int(), k: int(), a: f64(), transA: bool(), b: f64(), transB: bool(), c: f64('out'), threads: int() },
  /** In place: a (m x m, symmetric, lower triangle read) becomes its lower Cholesky factor; ridge * mean diagonal is added first. */
  cholesky: { m: int(), a: f64('inout'), ridge: number() },
  /**
   * In place: b (rows x k) = b * op(L_k)^-1, L_k the leading k x k block of
   * the lower triangular m x m matrix l; transpose: each row x of b becomes
   * L_k^-1 x, else L_k^-T x.
   */
  triangularSolve: { m: int(), l: f64(), k: int(), rows: int(), b: f64('inout'), transpose: bool() },
  /**
   * values (length m): the eigenvalues of the symmetric m x m matrix a (lower triangle read), descending;
   * with overwrite, a is reduced in place and left undefined (else it is only read).
   */
  symmetricEigenvalues: { m: int(), count: int(), a: f64('inout'), values: f64('out'), threads: int(), overwrite: bool() },
  /**
   * Per output channel j of the conv and of the DAC pair's single conv W':
   * energy[j] = sum (channelScale[i] tapScale[t] W[j,i,t])^2, approxEnergy[j]
   * the same of W', residual[j] = sum (W - W')^2 unscaled.
   */
  dacPairEnergy: {
    ...WEIGHTS,
    rank: int(),
    /** [c*rank][kh*kw] */
    depthwise: f32(),
    /** [n][c*rank] */
    pointwise: f32(),
    /** [kh*kw] */
    tapScale: f64(),
    /** [c] */
    channelScale: f64(),
    /** [n] each */
    energy: f64('out'),
    approxEnergy: f64('out'),
    residual: f64('out'),
    threads: int(),
  },
} as const;

export type OpName = keyof typeof OPS;
export type OpArgs<N extends OpName> = ArgsOf<(typeof OPS)[N]>;
export const OP_NAMES = Object.keys(OPS) as OpName[];

export type DacArgs = OpArgs<'decomposeDac'>;
export type SpatialArgs = OpArgs<'decomposeSpatial'>;
export type ChannelArgs = OpArgs<'decomposeChannel'>;
export type DwPwArgs = OpArgs<'dwpw'>;
export type Conv2DArgs = OpArgs<'conv2d'>;
export type ConvGeometry = DwPwArgs['geometry'];

/** The kernel families with variants, as info() names them. */
export const KERNEL_FAMILIES = ['dwpw', 'conv2d', 'dac'] as const;
export type KernelFamily = (typeof KERNEL_FAMILIES)[number];

export interface RawBackendInfo {
  version: string;
  /** e.g. "x86_64 avx512f avx2 fma sse4.1", "aarch64 neon", "wasm32 simd128" */
  isa: string;
  /** "dwpw=ref,...,best;conv2d=...;dac=...": each family's variants, the default last */
  variants: string;
  hardwareThreads: number;
}

export type Binding = {
  readonly name: BackendName;
  info(): RawBackendInfo;
  /** Many decomposeDac calls at once; `threads` spreads them (native), each layer's own threads is ignored. */
  decomposeDacBatch(layers: DacArgs[], threads: number): void;
  /** Process-wide: blocks of at least `bytes` get mappings of their own (native/common/allocator.h); false where unsupported. */
  mapLargeAllocations(bytes: number): boolean;
} & { readonly [N in OpName]: (args: OpArgs<N>) => void };

/** One field of an op as the marshalling walks it: a path into the args object and where C++ keeps it. */
export interface FieldLayout {
  /** "geometry.inH" */
  name: string;
  path: string[];
  kind: FieldKind;
  dir: Direction;
  /** Byte offset in the params struct (of the pointer, for arrays). */
  offset: number;
  /** Byte offset of the int64 length, for arrays; -1 otherwise. */
  lengthOffset: number;
}

export interface OpLayout {
  /** Position in the binary's op table. */
  index: number;
  /** sizeof the params struct. */
  size: number;
  fields: FieldLayout[];
}

/** native/ops.h Kind's codes. */
const KIND_CODES: Record<FieldKind, number> = { int: 0, number: 1, bool: 2, f32: 3, 'f32?': 4, f64: 5, name: 6 };

function flatten(fields: Fields, prefix: string[] = []): Array<Omit<FieldLayout, 'offset' | 'lengthOffset'>> {
  return Object.entries(fields).flatMap(([key, f]) =>
    f.kind === 'struct'
      ? flatten(f.fields, [...prefix, key])
      : [{ name: [...prefix, key].join('.'), path: [...prefix, key], kind: f.kind, dir: f.dir }],
  );
}

/**
 * Checks a binary's op tables (native/ops.h describe(): "name size;field
 * kind offset length_offset;...", one string an op) against OPS and returns
 * each op's layout. Throws naming the first difference: the binary was
 * built from other sources.
 */
export function checkContract(tables: string[]): Record<OpName, OpLayout> {
  const byName = new Map<string, { index: number; size: number; fields: Map<string, number[]> }>();
  tables.forEach((text, index) => {
    const [head, ...fields] = text.split(';');
    const [opName, size] = head.split(' ');
    byName.set(opName, {
      index,
      size: Number(size),
      fields: new Map(fields.map((f) => {
        const [field, ...nums] = f.split(' ');
        return [field, nums.map(Number)];
      })),
    });
  });
  const out = {} as Record<OpName, OpLayout>;
  for (const op of OP_NAMES) {
    const table = byName.get(op);
    if (!table) throw new Error(`out of date: no ${op}`);
    const want = flatten(OPS[op]);
    const extra = [...table.fields.keys()].filter((f) => !want.some((w) => w.name === f));
    if (extra.length > 0) throw new Error(`out of date: ${op} has fields ${extra.join(', ')} that this package does not know`);
    out[op] = {
      index: table.index,
      size: table.size,
      fields: want.map((w) => {
        const got = table.fields.get(w.name);
        if (!got || got[0] !== KIND_CODES[w.kind]) throw new Error(`out of date: ${op}.${w.name} is missing or of another kind`);
        return { ...w, offset: got[1], lengthOffset: got[2] };
      }),
    };
  }
  return out;
}
