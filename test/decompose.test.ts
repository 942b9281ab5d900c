// The decomposition core through every backend that loads (native and/or
// WASM): DAC, spatial and channel results against the independent TypeScript
// Jacobi reference element by element (signs included) on odd shapes and both
// layouts; exact reconstruction at full rank; Eckart-Young errors at reduced
// rank; zero and rank-deficient weights; native == WASM; and every bad
// argument rejected with a clear error, both by the TypeScript checks and by
// the C++ ones behind the raw binding.
import t from 'tap';
import { availableBackends } from '../src/index.js';
import type { DacArgs } from '../src/backend/binding.js';
import {
  referenceChannel,
  referenceDac,
  referenceSpatial,
  toHwio,
  weightAt,
  type Layout,
  type Shape,
} from '../bench/reference-svd.js';
import { seededValues } from './fixtures/util.js';

const backends = availableBackends();

const sizeOf = (s: Shape): number => s.n * s.c * s.kh * s.kw;
const shapeText = (s: Shape): string => `n=${s.n} c=${s.c} ${s.kh}x${s.kw}`;

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Largest |a - b| relative to max|b| (absolute when b is all zero); Infinity on length mismatch or non-finite. */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) return Infinity;
    d = Math.max(d, Math.abs(a[i] - b[i]));
  }
  const scale = maxAbs(b);
  return scale > 0 ? d / scale : d;
}

const TOL = 2e-5;

interface DacCase {
  shape: Shape;
  rank: number;
  seed: number;
}

// c = 1..17 over n in {1, 3, 64} and kernels 1x1, 3x3, 5x5, 7x7, 1x3, 3x1;
// n = 513 only with small c (the reference is slow there).
const kernels: Array<[number, number]> = [
  [1, 1],
  [3, 3],
  [5, 5],
  [7, 7],
  [1, 3],
  [3, 1],
];
const dacCases: DacCase[] = [];
for (let c = 1; c <= 17; c++) {
  const n = [1, 3, 64][c % 3];
  const [kh, kw] = kernels[c % kernels.length];
  const m = Math.min(n, kh * kw);
  const rank = [1, Math.min(4, m), m][c % 3];
  dacCases.push({ shape: { n, c, kh, kw }, rank, seed: 1000 + c });
}
dacCases.push(
  { shape: { n: 513, c: 2, kh: 3, kw: 3 }, rank: 4, seed: 2001 },
  { shape: { n: 513, c: 1, kh: 5, kw: 5 }, rank: 25, seed: 2002 },
  { shape: { n: 513, c: 3, kh: 1, kw: 3 }, rank: 2, seed: 2003 },
  { shape: { n: 64, c: 5, kh: 7, kw: 7 }, rank: 49, seed: 2004 },
  { shape: { n: 3, c: 4, kh: 7, kw: 7 }, rank: 3, seed: 2005 },
);

/** ||M_i - P_i D_i||^2 for every input channel, from a DAC result. */
function channelErrors(w: Float32Array, s: Shape, layout: Layout, rank: number, dw: Float32Array, pw: Float32Array): number[] {
  const k = s.kh * s.kw;
  const out: number[] = [];
  for (let i = 0; i < s.c; i++) {
    let err = 0;
    for (let o = 0; o < s.n; o++)
      for (let a = 0; a < k; a++) {
        let v = 0;
        for (let j = 0; j < rank; j++) v += pw[o * s.c * rank + i * rank + j] * dw[(i * rank + j) * k + a];
        const d = weightAt(w, s, layout, o, i, Math.floor(a / s.kw), a % s.kw) - v;
        err += d * d;
      }
    out.push(err);
  }
  return out;
}

function channelEnergy(w: Float32Array, s: Shape, i: number): number {
  let e = 0;
  for (let o = 0; o < s.n; o++)
    for (let h = 0; h < s.kh; h++)
      for (let x = 0; x < s.kw; x++) e += weightAt(w, s, 'OIHW', o, i, h, x) ** 2;
  return e;
}

if (backends.length === 0) t.fail('no backend loaded');

for (const b of backends) {
  t.test(`${b.name}: DAC matches the reference on odd shapes, both layouts`, async (t) => {
    for (const { shape, rank, seed } of dacCases) {
      const w = seededValues(sizeOf(shape), seed);
      const ref = referenceDac(w, shape, rank);
      const got = b.decomposeDac(w, shape, rank);
      const name = `${shapeText(shape)} r=${rank}`;
      t.ok(relDiff(got.singular, ref.singular) < TOL, `${name}: singular values`);
      t.ok(relDiff(got.depthwise, ref.depthwise) < TOL, `${name}: depthwise (signs included)`);
      t.ok(relDiff(got.pointwise, ref.pointwise) < TOL, `${name}: pointwise`);
      const hw = b.decomposeDac(toHwio(w, shape), shape, rank, { layout: 'HWIO', threads: 2 });
      t.ok(
        relDiff(hw.depthwise, got.depthwise) < 1e-6 && relDiff(hw.pointwise, got.pointwise) < 1e-6 && relDiff(hw.singular, got.singular) < 1e-6,
        `${name}: HWIO (threads 2) equals OIHW`,
      );
    }
  });

  t.test(`${b.name}: every DAC kernel variant can be forced and matches the reference`, async (t) => {
    const { dac, dacVariants } = b.info().kernels;
    t.equal(dacVariants[0], 'ref', 'the list starts with ref');
    t.equal(dacVariants[dacVariants.length - 1], dac, 'the default is the last');
    for (const variant of dacVariants) {
      for (const { shape, rank, seed } of dacCases) {
        const w = seededValues(sizeOf(shape), seed);
        const ref = referenceDac(w, shape, rank);
        const got = b.decomposeDac(w, shape, rank, { variant });
        const name = `${variant} ${shapeText(shape)} r=${rank}`;
        if (!(relDiff(got.singular, ref.singular) < TOL && relDiff(got.depthwise, ref.depthwise) < TOL && relDiff(got.pointwise, ref.pointwise) < TOL)) {
          t.fail(`${name}: differs from the reference`);
        }
      }
      const layers = dacCases.slice(0, 3).map(({ shape, rank, seed }) => ({ weights: seededValues(sizeOf(shape), seed), shape, rank }));
      const batch = b.decomposeDacBatch(layers, { variant, threads: 2 });
      layers.forEach((l, i) => t.same(batch[i].depthwise, b.decomposeDac(l.weights, l.shape, l.rank, { variant }).depthwise, `${variant}: batch layer ${i}`));
    }
    const w = seededValues(8 * 3 * 9, 4);
    t.throws(() => b.decomposeDac(w, { n: 8, c: 3, kh: 3, kw: 3 }, 2, { variant: 'mmx' }), /field variant: variant must be one of ref/);
    t.throws(() => b.binding.decomposeDac({ weights: w, layout: 0, n: 8, c: 3, kh: 3, kw: 3, rank: 2, depthwise: new Float32Array(54), pointwise: new Float32Array(48), singular: null, threads: 1, variant: 'mmx' }), /variant 'mmx' is not available/, 'C++ refuses an unknown variant too');
  });

  t.test(`${b.name}: DAC at full rank reconstructs the weights`, async (t) => {
    for (const shape of [
      { n: 37, c: 6, kh: 3, kw: 3 },
      { n: 64, c: 3, kh: 5, kw: 5 },
      { n: 2, c: 5, kh: 3, kw: 3 },
    ]) {
      const w = seededValues(sizeOf(shape), 77 + shape.n);
      const rank = Math.min(shape.n, shape.kh * shape.kw);
      const r = b.decomposeDac(w, shape, rank);
      const errs = channelErrors(w, shape, 'OIHW', rank, r.depthwise, r.pointwise);
      let total = 0;
      let norm = 0;
      errs.forEach((e, i) => {
        total += e;
        norm += channelEnergy(w, shape, i);
      });
      t.ok(Math.sqrt(total / norm) < 1e-5, `${shapeText(shape)}: relative error ${Math.sqrt(total / norm).toExponential(2)}`);
    }
  });

  t.test(`${b.name}: DAC error at rank r is the discarded singular values (Eckart-Young)`, async (t) => {
    const shape = { n: 48, c: 7, kh: 3, kw: 3 };
    const w = seededValues(sizeOf(shape), 4242);
    for (const rank of [1, 2, 4, 7]) {
      const r = b.decomposeDac(w, shape, rank);
      const errs = channelErrors(w, shape, 'OIHW', rank, r.depthwise, r.pointwise);
      let worst = 0;
      for (let i = 0; i < shape.c; i++) {
        let discarded = 0;
        for (let j = rank; j < 9; j++) discarded += r.singular[i * 9 + j] ** 2;
        worst = Math.max(worst, Math.abs(errs[i] - discarded) / channelEnergy(w, shape, i));
      }
      t.ok(worst < 1e-5, `rank ${rank}: worst |error - discarded| / energy = ${worst.toExponential(2)}`);
    }
  });

  t.test(`${b.name}: DAC on zero and rank-deficient channels`, async (t) => {
    const shape = { n: 40, c: 4, kh: 3, kw: 3 };
    const w = seededValues(sizeOf(shape), 5);
    const set = (o: number, i: number, a: number, v: number) => {
      w[(o * shape.c + i) * 9 + a] = v;
    };
    const u = seededValues(40, 6);
    const v = seededValues(9, 7);
    for (let o = 0; o < 40; o++) {
      for (let a = 0; a < 9; a++) {
        set(o, 1, a, 0); // channel 1: all zero
        set(o, 2, a, Math.fround(u[o] * v[a])); // channel 2: rank 1
      }
      set(o, 3, 4, w[(o * shape.c + 3) * 9]); // channel 3: two equal columns
    }
    for (const rank of [1, 3, 9]) {
      const r = b.decomposeDac(w, shape, rank);
      const ref = referenceDac(w, shape, rank);
      t.ok(relDiff(r.depthwise, ref.depthwise) < 5e-5 && relDiff(r.pointwise, ref.pointwise) < 5e-5, `rank ${rank}: matches reference`);
      t.ok([...r.depthwise, ...r.pointwise, ...r.singular].every(Number.isFinite), `rank ${rank}: no NaN`);
      t.ok(r.depthwise.subarray(rank * 9, 2 * rank * 9).every((x) => x === 0), `rank ${rank}: zero channel has zero filters`);
      t.ok(r.singular.subarray(9, 18).every((x) => x === 0), `rank ${rank}: zero channel has zero singular values`);
      t.ok(r.depthwise.subarray((2 * rank + 1) * 9, 3 * rank * 9).every((x) => x === 0), `rank ${rank}: rank-1 channel has one filter`);
      if (rank === 9) t.ok(r.depthwise.subarray((3 * rank + 8) * 9, 4 * rank * 9).every((x) => x === 0), 'null direction of channel 3 is zero');
    }
  });

  t.test(`${b.name}: decomposeDacBatch equals per-layer calls`, async (t) => {
    const layers = [
      { shape: { n: 64, c: 3, kh: 3, kw: 3 }, rank: 4, layout: 'OIHW' as const },
      { shape: { n: 20, c: 33, kh: 5, kw: 5 }, rank: 3, layout: 'HWIO' as const },
      { shape: { n: 7, c: 90, kh: 3, kw: 3 }, rank: 7, layout: 'OIHW' as const },
    ].map((l, i) => ({ ...l, weights: seededValues(sizeOf(l.shape), 300 + i) }));
    const batch = b.decomposeDacBatch(layers, { threads: 2 });
    layers.forEach((l, i) => {
      const one = b.decomposeDac(l.weights, l.shape, l.rank, { layout: l.layout });
      t.same([batch[i].depthwise, batch[i].pointwise, batch[i].singular], [one.depthwise, one.pointwise, one.singular], `layer ${i}`);
    });
  });

  t.test(`${b.name}: spatial and channel match the reference`, async (t) => {
    const shapes: Shape[] = [
      { n: 1, c: 1, kh: 3, kw: 3 },
      { n: 3, c: 5, kh: 3, kw: 3 },
      { n: 16, c: 7, kh: 3, kw: 3 },
      { n: 5, c: 3, kh: 5, kw: 5 },
      { n: 6, c: 4, kh: 1, kw: 3 },
      { n: 6, c: 4, kh: 3, kw: 1 },
      { n: 4, c: 6, kh: 1, kw: 1 },
      { n: 9, c: 2, kh: 7, kw: 7 },
      { n: 64, c: 17, kh: 3, kw: 3 },
      { n: 513, c: 1, kh: 3, kw: 3 },
    ];
    shapes.forEach((shape, idx) => {
      const w = seededValues(sizeOf(shape), 500 + idx);
      const hwio = toHwio(w, shape);
      const ms = Math.min(shape.c * shape.kh, shape.n * shape.kw);
      for (const width of new Set([1, Math.min(3, ms), ms])) {
        const ref = referenceSpatial(w, shape, width);
        const got = b.decomposeSpatial(w, shape, width);
        const name = `spatial ${shapeText(shape)} width=${width}`;
        t.ok(relDiff(got.singular, ref.singular) < TOL, `${name}: singular values`);
        t.ok(relDiff(got.vertical, ref.vertical) < TOL, `${name}: vertical (signs included)`);
        t.ok(relDiff(got.horizontal, ref.horizontal) < TOL, `${name}: horizontal`);
        const hw = b.decomposeSpatial(hwio, shape, width, { layout: 'HWIO' });
        t.ok(relDiff(hw.vertical, got.vertical) < 1e-6 && relDiff(hw.horizontal, got.horizontal) < 1e-6, `${name}: HWIO equals OIHW`);
      }
      const mc = Math.min(shape.n, shape.c * shape.kh * shape.kw);
      for (const width of new Set([1, Math.min(3, mc), mc])) {
        const ref = referenceChannel(w, shape, width);
        const got = b.decomposeChannel(w, shape, width);
        const name = `channel ${shapeText(shape)} width=${width}`;
        t.ok(relDiff(got.singular, ref.singular) < TOL, `${name}: singular values`);
        t.ok(relDiff(got.first, ref.first) < TOL, `${name}: first stage (signs included)`);
        t.ok(relDiff(got.second, ref.second) < TOL, `${name}: second stage`);
        const hw = b.decomposeChannel(hwio, shape, width, { layout: 'HWIO' });
        t.ok(relDiff(hw.first, got.first) < 1e-6 && relDiff(hw.second, got.second) < 1e-6, `${name}: HWIO equals OIHW`);
      }
    });
  });

  t.test(`${b.name}: spatial and channel at full width reconstruct, and Eckart-Young below it`, async (t) => {
    const shape = { n: 12, c: 5, kh: 3, kw: 3 };
    const w = seededValues(sizeOf(shape), 808);
    let energy = 0;
    for (const x of w) energy += x * x;
    const spatialError = (width: number) => {
      const r = b.decomposeSpatial(w, shape, width);
      let err = 0;
      for (let o = 0; o < shape.n; o++)
        for (let i = 0; i < shape.c; i++)
          for (let h = 0; h < 3; h++)
            for (let x = 0; x < 3; x++) {
              let v = 0;
              for (let j = 0; j < width; j++) v += r.vertical[(j * shape.c + i) * 3 + h] * r.horizontal[(o * width + j) * 3 + x];
              err += (weightAt(w, shape, 'OIHW', o, i, h, x) - v) ** 2;
            }
      let discarded = 0;
      for (let j = width; j < r.singular.length; j++) discarded += r.singular[j] ** 2;
      return { err, discarded };
    };
    const channelError = (width: number) => {
      const r = b.decomposeChannel(w, shape, width);
      const cols = shape.c * 9;
      let err = 0;
      for (let o = 0; o < shape.n; o++)
        for (let q = 0; q < cols; q++) {
          let v = 0;
          for (let j = 0; j < width; j++) v += r.second[o * width + j] * r.first[j * cols + q];
          err += (w[o * cols + q] - v) ** 2;
        }
      let discarded = 0;
      for (let j = width; j < r.singular.length; j++) discarded += r.singular[j] ** 2;
      return { err, discarded };
    };
    t.ok(spatialError(15).err / energy < 1e-10, 'spatial full width reconstructs');
    t.ok(channelError(12).err / energy < 1e-10, 'channel full width reconstructs');
    for (const width of [1, 4, 9]) {
      const s = spatialError(width);
      t.ok(Math.abs(s.err - s.discarded) / energy < 1e-5, `spatial width ${width}: error = discarded energy`);
      const c = channelError(width);
      t.ok(Math.abs(c.err - c.discarded) / energy < 1e-5, `channel width ${width}: error = discarded energy`);
    }
  });

  t.test(`${b.name}: spatial and channel on zero and rank-deficient weights`, async (t) => {
    const shape = { n: 6, c: 5, kh: 3, kw: 3 };
    const zero = new Float32Array(sizeOf(shape));
    const sz = b.decomposeSpatial(zero, shape, 4);
    const cz = b.decomposeChannel(zero, shape, 4);
    t.ok([sz.vertical, sz.horizontal, sz.singular, cz.first, cz.second, cz.singular].every((a) => a.every((x) => x === 0)), 'all zero in, all zero out');
    // Rank 1 in both arrangements: W[o][i][h][x] = p[o] q[i] r[h] s[x].
    const [p, q, r, s] = [seededValues(6, 1), seededValues(5, 2), seededValues(3, 3), seededValues(3, 4)];
    const w = new Float32Array(sizeOf(shape));
    for (let o = 0; o < 6; o++)
      for (let i = 0; i < 5; i++)
        for (let h = 0; h < 3; h++) for (let x = 0; x < 3; x++) w[((o * 5 + i) * 3 + h) * 3 + x] = p[o] * q[i] * r[h] * s[x];
    const sp = b.decomposeSpatial(w, shape, 3);
    const spRef = referenceSpatial(w, shape, 3);
    t.ok(relDiff(sp.vertical, spRef.vertical) < 5e-5 && relDiff(sp.horizontal, spRef.horizontal) < 5e-5, 'spatial rank 1 matches reference');
    t.ok(sp.vertical.subarray(15).every((x) => x === 0), 'spatial rank 1: extra vertical filters are zero');
    const ch = b.decomposeChannel(w, shape, 3);
    const chRef = referenceChannel(w, shape, 3);
    t.ok(relDiff(ch.first, chRef.first) < 5e-5 && relDiff(ch.second, chRef.second) < 5e-5, 'channel rank 1 matches reference');
    t.ok(ch.first.subarray(45).every((x) => x === 0), 'channel rank 1: extra first-stage filters are zero');
  });

  t.test(`${b.name}: bad arguments throw clear errors`, async (t) => {
    const shape = { n: 8, c: 3, kh: 3, kw: 3 };
    const w = seededValues(sizeOf(shape), 9);
    const nan = w.slice();
    nan[40] = NaN;
    const inf = w.slice();
    inf[3] = -Infinity;
    t.throws(() => b.decomposeDac(w.subarray(1), shape, 2), /weights has 215 values, expected 216/);
    t.throws(() => b.decomposeDac(w, shape, 0), /rank must be in 1\.\.8, got 0/);
    t.throws(() => b.decomposeDac(w, shape, 9), /rank must be in 1\.\.8, got 9/);
    t.throws(() => b.decomposeDac(w, shape, 2.5), /rank must be an integer/);
    t.throws(() => b.decomposeDac(w, shape, NaN), /rank must be an integer/);
    t.throws(() => b.decomposeDac(nan, shape, 2), /weights\[40\] is NaN/);
    t.throws(() => b.decomposeDac(inf, shape, 2), /weights\[3\] is -Infinity/);
    t.throws(() => b.decomposeDac(w, { ...shape, n: 0 }, 2), /shape\.n/);
    t.throws(() => b.decomposeDac(w, shape, 2, { layout: 'NCHW' as never }), /layout/);
    t.throws(() => b.decomposeDac(Array.from(w) as never, shape, 2), /Float32Array/);
    t.throws(() => b.decomposeSpatial(w, shape, 0), /width must be in 1\.\.9, got 0/);
    t.throws(() => b.decomposeSpatial(w, shape, 10), /width must be in 1\.\.9, got 10/);
    t.throws(() => b.decomposeSpatial(nan, shape, 2), /NaN/);
    t.throws(() => b.decomposeSpatial(w.subarray(2), shape, 2), /weights has/);
    t.throws(() => b.decomposeChannel(w, shape, 9), /width must be in 1\.\.8, got 9/);
    t.throws(() => b.decomposeChannel(w, shape, -1), /width must be in 1\.\.8/);
    t.throws(() => b.decomposeChannel(inf, shape, 2), /Infinity/);
    t.throws(() => b.decomposeDacBatch([{ weights: w, shape, rank: 2 }, { weights: w, shape, rank: 12, name: 'conv7' }]), /layer conv7.*rank/);
  });

  t.test(`${b.name}: the C++ checks behind the raw binding reject what TypeScript would`, async (t) => {
    const shape = { n: 8, c: 3, kh: 3, kw: 3 };
    const w = seededValues(sizeOf(shape), 10);
    const args = (edit: Partial<DacArgs> = {}): DacArgs => ({
      weights: w,
      layout: 0,
      ...shape,
      rank: 2,
      depthwise: new Float32Array(3 * 2 * 9),
      pointwise: new Float32Array(8 * 3 * 2),
      singular: new Float32Array(3 * 8),
      threads: 1,
      ...edit,
    });
    t.doesNotThrow(() => b.binding.decomposeDac(args()), 'well-formed arguments pass');
    t.doesNotThrow(() => b.binding.decomposeDac(args({ singular: null })), 'singular values are optional');
    const nan = w.slice();
    nan[100] = NaN;
    const cases: Array<[string, Partial<DacArgs>, RegExp]> = [
      ['short weights', { weights: w.subarray(1) }, /weights length 215 does not match/],
      ['rank 0', { rank: 0 }, /rank 0 is out of range/],
      ['rank too big', { rank: 9 }, /rank 9 is out of range \[1, 8\]/],
      ['short depthwise', { depthwise: new Float32Array(53) }, /depthwise length 53/],
      ['long pointwise', { pointwise: new Float32Array(49) }, /pointwise length 49/],
      ['wrong singular', { singular: new Float32Array(9) }, /singular length 9/],
      ['bad layout', { layout: 3 as never }, /layout/],
      ['NaN weights', { weights: nan }, /input channel 2: weights contain NaN/],
    ];
    for (const [name, edit, re] of cases) t.throws(() => b.binding.decomposeDac(args(edit)), re, name);
    t.throws(
      () =>
        b.binding.decomposeSpatial({ weights: w, layout: 1, ...shape, width: 2, vertical: new Float32Array(18), horizontal: new Float32Array(47), singular: null, threads: 1 }),
      /horizontal length 47/,
    );
    t.throws(
      () => b.binding.decomposeChannel({ weights: w, layout: 0, ...shape, width: 9, first: new Float32Array(243), second: new Float32Array(72), singular: null, threads: 1 }),
      /width 9 is out of range/,
    );
  });
}

if (backends.length === 2) {
  t.test('native and WASM agree', async (t) => {
    const [nat, wasm] = backends[0].name === 'native' ? backends : [backends[1], backends[0]];
    for (const { shape, rank, seed } of dacCases) {
      const w = seededValues(sizeOf(shape), seed);
      const a = nat.decomposeDac(w, shape, rank);
      const b = wasm.decomposeDac(w, shape, rank);
      t.ok(
        relDiff(a.depthwise, b.depthwise) < 1e-6 && relDiff(a.pointwise, b.pointwise) < 1e-6 && relDiff(a.singular, b.singular) < 1e-6,
        `DAC ${shapeText(shape)} r=${rank}`,
      );
    }
    const shape = { n: 24, c: 10, kh: 3, kw: 3 };
    const w = seededValues(sizeOf(shape), 99);
    const sa = nat.decomposeSpatial(w, shape, 6);
    const sb = wasm.decomposeSpatial(w, shape, 6);
    t.ok(relDiff(sa.vertical, sb.vertical) < 1e-6 && relDiff(sa.horizontal, sb.horizontal) < 1e-6, 'spatial');
    const ca = nat.decomposeChannel(w, shape, 6);
    const cb = wasm.decomposeChannel(w, shape, 6);
    t.ok(relDiff(ca.first, cb.first) < 1e-6 && relDiff(ca.second, cb.second) < 1e-6, 'channel');
  });
}
