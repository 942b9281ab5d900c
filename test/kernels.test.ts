// The inference kernels on every backend and every kernel variant: the fused
// depthwise+pointwise kernel against a TypeScript reference and against the
// same layer run as two separate convolutions; the dense conv against a
// TypeScript reference; padding helpers against TF semantics; bad arguments.
import t from 'tap';
import { availableBackends, decomposeDac, DacError } from '../src/index.js';
import {
  conv2d,
  convOutputSize,
  fusedDepthwisePointwise,
  kernelVariants,
  resolvePadding,
  samePadding,
  type Activation,
  type Nhwc,
  type Padding,
} from '../src/kernels.js';
import { signedUniform } from '../src/random.js';

function randomArray(n: number, next: () => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = next();
  return a;
}

interface Case {
  batch: number;
  h: number;
  w: number;
  c: number;
  n: number;
  kh: number;
  kw: number;
  strides: [number, number];
  dilations: [number, number];
  padding: Padding;
  rank: number;
  bias: boolean;
  activation: Activation;
  threads: number;
}

function describe(k: Case): string {
  const pad = typeof k.padding === 'string' ? k.padding : `[${k.padding.join(',')}]`;
  return (
    `b${k.batch} ${k.h}x${k.w}x${k.c}->${k.n} k${k.kh}x${k.kw} s${k.strides.join(',')} d${k.dilations.join(',')} ` +
    `${pad} r${k.rank}${k.bias ? ' bias' : ''} ${k.activation} t${k.threads}`
  );
}

function act(v: number, a: Activation): number {
  if (a === 'relu') return v < 0 ? 0 : v;
  if (a === 'relu6') return v < 0 ? 0 : v > 6 ? 6 : v;
  return v;
}

interface Geo {
  outH: number;
  outW: number;
  pads: [number, number, number, number];
}

function geo(k: Case): Geo {
  const pads = resolvePadding(k.padding, k.h, k.w, k.kh, k.kw, k.strides, k.dilations);
  return {
    pads,
    outH: convOutputSize(k.h, k.kh, k.strides[0], k.dilations[0], pads[0], pads[2]),
    outW: convOutputSize(k.w, k.kw, k.strides[1], k.dilations[1], pads[1], pads[3]),
  };
}

/** Visits every in-bounds tap of output pixel (b, oh, ow): f(tap, input offset of channel 0). */
function taps(k: Case, g: Geo, b: number, oh: number, ow: number, f: (tap: number, base: number) => void): void {
  for (let dh = 0; dh < k.kh; dh++) {
    const ih = oh * k.strides[0] - g.pads[0] + dh * k.dilations[0];
    if (ih < 0 || ih >= k.h) continue;
    for (let dw = 0; dw < k.kw; dw++) {
      const iw = ow * k.strides[1] - g.pads[1] + dw * k.dilations[1];
      if (iw < 0 || iw >= k.w) continue;
      f(dh * k.kw + dw, ((b * k.h + ih) * k.w + iw) * k.c);
    }
  }
}

/** The fused layer straight from its definition, in float64. */
function refFused(k: Case, x: Float32Array, dw: Float32Array, pw: Float32Array, bias: Float32Array | null): Float64Array {
  const g = geo(k);
  const T = k.kh * k.kw;
  const cr = k.c * k.rank;
  const y = new Float64Array(k.batch * g.outH * g.outW * k.n);
  const mid = new Float64Array(cr);
  for (let b = 0; b < k.batch; b++)
    for (let oh = 0; oh < g.outH; oh++)
      for (let ow = 0; ow < g.outW; ow++) {
        mid.fill(0);
        taps(k, g, b, oh, ow, (tap, base) => {
          for (let i = 0; i < k.c; i++)
            for (let j = 0; j < k.rank; j++) mid[i * k.rank + j] += dw[(i * k.rank + j) * T + tap] * x[base + i];
        });
        const o0 = ((b * g.outH + oh) * g.outW + ow) * k.n;
        for (let o = 0; o < k.n; o++) {
          let s = bias ? bias[o] : 0;
          for (let q = 0; q < cr; q++) s += pw[o * cr + q] * mid[q];
          y[o0 + o] = act(s, k.activation);
        }
      }
  return y;
}

/** Dense conv from its definition (OIHW weights), in float64. */
function refConv(k: Case, x: Float32Array, w: Float32Array, bias: Float32Array | null): Float64Array {
  const g = geo(k);
  const T = k.kh * k.kw;
  const y = new Float64Array(k.batch * g.outH * g.outW * k.n);
  for (let b = 0; b < k.batch; b++)
    for (let oh = 0; oh < g.outH; oh++)
      for (let ow = 0; ow < g.outW; ow++) {
        const o0 = ((b * g.outH + oh) * g.outW + ow) * k.n;
        for (let o = 0; o < k.n; o++) {
          let s = bias ? bias[o] : 0;
          taps(k, g, b, oh, ow, (tap, base) => {
            for (let i = 0; i < k.c; i++) s += w[(o * k.c + i) * T + tap] * x[base + i];
          });
          y[o0 + o] = act(s, k.activation);
        }
      }
  return y;
}

/** Largest |got - want| relative to max(|want_i|, mean |want|). */
function relError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let mean = 0;
  for (let i = 0; i < want.length; i++) mean += Math.abs(want[i]);
  mean = want.length ? mean / want.length : 0;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / Math.max(Math.abs(want[i]), mean, 1e-20);
    if (!(e <= worst)) worst = Number.isNaN(e) ? Infinity : e;
  }
  return worst;
}

const TOL = 1e-4;
const backends = availableBackends();

// Sampled combinations: every listed value of every axis appears, and
// stride 2, dilation 2, each padding and batch 3 meet several kernels.
function cases(): Case[] {
  const chans = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 33];
  const sizes = [1, 7, 13];
  const kernels: Array<[number, number]> = [
    [1, 1],
    [3, 3],
    [5, 5],
    [7, 7],
    [1, 3],
  ];
  const pads: Padding[] = ['same', 'valid', [2, 0, 1, 3]];
  const acts: Activation[] = ['none', 'relu', 'relu6'];
  const next = signedUniform(20240611);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(((next() + 1) / 2) * a.length) % a.length];
  const out: Case[] = [];
  for (let i = 0; out.length < 36; i++) {
    const [kh, kw] = kernels[i % kernels.length];
    const k: Case = {
      batch: i % 6 === 0 ? 3 : 1,
      h: sizes[i % 3],
      w: sizes[Math.floor(i / 3) % 3],
      c: chans[i % chans.length],
      n: chans[(i * 7 + 3) % chans.length],
      kh,
      kw,
      strides: i % 4 === 1 ? [2, 2] : i % 9 === 5 ? [1, 2] : [1, 1],
      dilations: i % 5 === 2 ? [2, 2] : [1, 1],
      padding: pads[i % 3],
      rank: 1,
      bias: i % 2 === 0,
      activation: acts[i % 3],
      threads: 1 + (i % 3),
    };
    k.rank = 1 + Math.floor(((next() + 1) / 2) * Math.min(k.n, kh * kw));
    k.rank = Math.min(k.rank, Math.min(k.n, kh * kw));
    const g = geo(k);
    if (g.outH < 1 || g.outW < 1) k.padding = 'same';
    if (pick([true, false, false])) k.threads = 2;
    out.push(k);
  }
  return out;
}

t.test('padding helpers follow TF/Keras semantics', async (t) => {
  t.same(samePadding(7, 3, 2, 1), [1, 1]);
  t.same(samePadding(8, 3, 2, 1), [0, 1], 'odd total padding: the extra pixel goes after');
  t.same(samePadding(13, 5, 1, 2), [4, 4]);
  t.same(samePadding(5, 1, 1, 1), [0, 0]);
  t.same(samePadding(4, 7, 1, 1), [3, 3]);
  t.same(resolvePadding('valid', 9, 9, 3, 3), [0, 0, 0, 0]);
  t.same(resolvePadding('same', 8, 7, 3, 1, [2, 2]), [0, 0, 1, 0]);
  t.same(resolvePadding([1, 2, 3, 4], 9, 9, 3, 3), [1, 2, 3, 4]);
  t.equal(convOutputSize(8, 3, 2, 1, 0, 1), 4, "'same' output is ceil(in / stride)");
  t.equal(convOutputSize(13, 5, 1, 2, 0, 0), 5);
  t.equal(convOutputSize(3, 5, 1, 1, 0, 0), 0, 'kernel larger than the input');
  t.throws(() => resolvePadding('full' as Padding, 9, 9, 3, 3), /padding must be/);
  t.throws(() => resolvePadding([1, -1, 0, 0], 9, 9, 3, 3), /padding.left/);
});

for (const backend of backends) {
  const variants = kernelVariants(backend);

  t.test(`${backend.name}: fused kernel, every variant, against the reference and the two-step layer`, async (t) => {
    let seed = 1;
    for (const k of cases()) {
      const next = signedUniform(seed++);
      const x = randomArray(k.batch * k.h * k.w * k.c, next);
      const T = k.kh * k.kw;
      const dw = randomArray(k.c * k.rank * T, next);
      const pw = randomArray(k.n * k.c * k.rank, next);
      const bias = k.bias ? randomArray(k.n, next) : null;
      const shape = { n: k.n, c: k.c, kh: k.kh, kw: k.kw };
      const opts = { strides: k.strides, dilations: k.dilations, padding: k.padding, bias, activation: k.activation, threads: k.threads, backend };
      const want = refFused(k, x, dw, pw, bias);

      // The same layer as two dense convs in the engine: the depthwise conv as
      // a block-diagonal c -> c*r conv, then the 1x1 conv with bias and activation.
      const cr = k.c * k.rank;
      const block = new Float32Array(cr * k.c * T);
      for (let i = 0; i < k.c; i++)
        for (let j = 0; j < k.rank; j++)
          for (let tap = 0; tap < T; tap++) block[((i * k.rank + j) * k.c + i) * T + tap] = dw[(i * k.rank + j) * T + tap];
      const mid = conv2d(x, [k.batch, k.h, k.w, k.c], block, { n: cr, c: k.c, kh: k.kh, kw: k.kw }, {
        strides: k.strides,
        dilations: k.dilations,
        padding: k.padding,
        backend,
        variant: 'ref',
      });
      const twoStep = conv2d(mid.output, mid.shape, pw, { n: k.n, c: cr, kh: 1, kw: 1 }, {
        bias,
        activation: k.activation,
        backend,
        variant: 'ref',
      });
      t.ok(relError(twoStep.output, want) <= TOL, `two-step layer matches the reference: ${describe(k)}`);

      for (const variant of [...variants.dwpw, undefined]) {
        const output = new Float32Array(twoStep.output.length).fill(NaN);
        const r = fusedDepthwisePointwise(x, [k.batch, k.h, k.w, k.c], { rank: k.rank, depthwise: dw, pointwise: pw }, shape, {
          ...opts,
          variant,
          output,
        });
        t.equal(r.output, output, 'writes into the given output');
        t.same(r.shape, twoStep.shape);
        const e1 = relError(r.output, want);
        const e2 = relError(r.output, twoStep.output);
        if (!(e1 <= TOL && e2 <= TOL)) {
          t.fail(`${variant ?? 'default'} ${describe(k)}: error ${e1} vs reference, ${e2} vs two-step`);
        }
      }
    }
    t.pass('all cases ran');
  });

  t.test(`${backend.name}: dense conv, every variant, against the reference`, async (t) => {
    let seed = 1000;
    for (const k of cases()) {
      const next = signedUniform(seed++);
      const x = randomArray(k.batch * k.h * k.w * k.c, next);
      const w = randomArray(k.n * k.c * k.kh * k.kw, next);
      const bias = k.bias ? randomArray(k.n, next) : null;
      const want = refConv(k, x, w, bias);
      for (const variant of [...variants.conv2d, undefined]) {
        const r = conv2d(x, [k.batch, k.h, k.w, k.c], w, { n: k.n, c: k.c, kh: k.kh, kw: k.kw }, {
          strides: k.strides,
          dilations: k.dilations,
          padding: k.padding,
          bias,
          activation: k.activation,
          threads: k.threads,
          backend,
          variant,
        });
        const e = relError(r.output, want);
        if (!(e <= TOL)) t.fail(`${variant ?? 'default'} ${describe(k)}: error ${e}`);
      }
    }
    t.pass('all cases ran');
  });

  t.test(`${backend.name}: a DAC decomposition at full rank runs as the original layer`, async (t) => {
    const next = signedUniform(77);
    const shape = { n: 12, c: 5, kh: 3, kw: 3 };
    const w = randomArray(shape.n * shape.c * 9, next);
    const x = randomArray(2 * 9 * 8 * shape.c, next);
    const bias = randomArray(shape.n, next);
    const dac = decomposeDac(w, shape, 9, { backend: backend.name });
    const opts = { padding: 'same' as const, strides: 2, bias, activation: 'relu' as const, backend };
    const dense = conv2d(x, [2, 9, 8, 5], w, shape, opts);
    const fused = fusedDepthwisePointwise(x, [2, 9, 8, 5], dac, shape, opts);
    t.ok(relError(fused.output, dense.output) < 1e-4, 'rank kh*kw reproduces the dense conv');
  });

  t.test(`${backend.name}: weights changed in place between calls are picked up`, async (t) => {
    const next = signedUniform(5);
    const shape = { n: 20, c: 9, kh: 3, kw: 3 };
    const x = randomArray(1 * 6 * 7 * 9, next);
    const dw = randomArray(9 * 2 * 9, next);
    const pw = randomArray(20 * 9 * 2, next);
    const k: Case = { batch: 1, h: 6, w: 7, c: 9, n: 20, kh: 3, kw: 3, strides: [1, 1], dilations: [1, 1], padding: 'same', rank: 2, bias: false, activation: 'none', threads: 1 };
    const output = new Float32Array(6 * 7 * 20);
    for (let round = 0; round < 3; round++) {
      if (round === 1) pw[17] += 1;
      if (round === 2) dw[5] -= 1;
      fusedDepthwisePointwise(x, [1, 6, 7, 9], { rank: 2, depthwise: dw, pointwise: pw }, shape, { padding: 'same', output, backend });
      t.ok(relError(output, refFused(k, x, dw, pw, null)) <= TOL, `round ${round}`);
    }
  });
}

t.test('bad arguments throw DacError naming the field', async (t) => {
  const shape = { n: 4, c: 3, kh: 3, kw: 3 };
  const x = new Float32Array(2 * 5 * 5 * 3);
  const w = new Float32Array(4 * 3 * 9);
  const dwpw = { rank: 2, depthwise: new Float32Array(3 * 2 * 9), pointwise: new Float32Array(4 * 3 * 2) };
  const inShape: Nhwc = [2, 5, 5, 3];
  const fused = (o: object, over: Partial<typeof dwpw> = {}, input: unknown = x, s: Nhwc = inShape) =>
    fusedDepthwisePointwise(input as Float32Array, s, { ...dwpw, ...over }, shape, o);
  const check = (fn: () => unknown, message: RegExp, what: string) => {
    try {
      fn();
      t.fail(`${what}: did not throw`);
    } catch (e) {
      t.ok(e instanceof DacError && message.test(e.message), `${what}: ${(e as Error).message}`);
    }
  };

  check(() => fused({}, {}, new Float32Array(10)), /input has 10 values, expected 150/, 'short input');
  check(() => fused({}, {}, [1, 2, 3]), /input must be a Float32Array/, 'plain array input');
  check(() => fused({}, {}, x, [2, 5, 5, 4]), /4 channels but the layer expects 3/, 'channel mismatch');
  check(() => fused({}, {}, x, [2, 5, 5] as unknown as Nhwc), /inputShape must be/, 'three-element shape');
  check(() => fused({}, { rank: 0 }), /rank/, 'rank 0');
  check(() => fused({}, { depthwise: new Float32Array(5) }), /depthwise has 5 values/, 'short depthwise');
  check(() => fused({}, { pointwise: new Float32Array(25) }), /pointwise has 25 values/, 'long pointwise');
  check(() => fused({ bias: new Float32Array(3) }), /bias has 3 values/, 'short bias');
  check(() => fused({ output: new Float32Array(7) }), /output has 7 values/, 'short output');
  check(() => fused({ padding: 'full' }), /padding must be/, 'unknown padding');
  check(() => fused({ padding: [0, 0, -1, 0] }), /padding.bottom/, 'negative explicit pad');
  check(() => fused({ strides: 0 }), /strides/, 'stride 0');
  check(() => fused({ dilations: [1, 1.5] }), /dilations\[1\]/, 'fractional dilation');
  check(() => fused({ dilations: 3 }), /does not fit/, 'dilated kernel larger than the valid input');
  check(() => fused({ activation: 'gelu' }), /activation must be/, 'unknown activation');
  check(() => fused({ threads: 0 }), /threads/, 'threads 0');
  check(() => fused({ variant: 'avx9000' }), /variant must be one of/, 'unknown variant');
  check(() => fused({ backend: 'cuda' }), /backend must be 'native' or 'wasm'/, 'unknown backend');
  const shared = new Float32Array(150 + 2 * 3 * 3 * 4);
  check(
    () => fused({ output: shared.subarray(150 - 8, 150 - 8 + 72) }, {}, shared.subarray(0, 150), [2, 5, 5, 3]),
    /output must not share memory with the input/,
    'output overlapping the input',
  );
  check(() => conv2d(x, inShape, new Float32Array(5), shape), /weights has 5 values/, 'conv2d short weights');
  check(() => conv2d(x, inShape, w, { ...shape, kh: 0 }), /shape.kh/, 'conv2d kernel 0');
  check(() => conv2d(x, inShape, w, shape, { output: x }), /output has 150 values, expected 72/, 'conv2d output of the wrong size');
  check(() => conv2d(x, inShape, w, shape, { variant: 'neon9' }), /variant must be one of/, 'conv2d unknown variant');
});
