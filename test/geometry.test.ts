// src/geometry.ts against first principles: output sizes against sliding the
// window by hand over odd sizes with strides, dilations and both paddings;
// 'same' padding as the smallest that gives ceil(in / stride) outputs; the
// rank bounds against the numerical rank of each method's matrix and the
// backends' own refusals; the weight layouts against their index formulas.
import t from 'tap';
import {
  checkInt,
  checkLayerGeometry,
  checkRank,
  checkShape,
  convOutputSize,
  hwioToOihw,
  maxRank,
  maxReplacementRank,
  MAX_DIM,
  MAX_KERNEL,
  oihwToHwio,
  paddedOutputSize,
  resolvePadding,
  samePadding,
  spatialIntermediateSize,
  type ConvShape,
  type LayerGeometry,
} from '../src/geometry.js';
import { availableBackends } from '../src/index.js';
import { reconstructWeights } from '../src/model/reconstruct.js';
import type { Method } from '../src/model/types.js';
import { seededValues } from '../src/random.js';

/** Window positions counted one by one: starts at 0, 0+stride, ... while the dilated window fits the padded input. */
function slideCount(inSize: number, kernel: number, stride: number, dilation: number, before: number, after: number): number {
  const span = dilation * (kernel - 1) + 1;
  let count = 0;
  for (let start = 0; start + span <= inSize + before + after; start += stride) count++;
  return count;
}

t.test('convOutputSize counts the window positions, 0 when the kernel does not fit', async (t) => {
  let checked = 0;
  let empty = 0;
  for (let inSize = 1; inSize <= 13; inSize += 2)
    for (const kernel of [1, 2, 3, 5, 7])
      for (const stride of [1, 2, 3])
        for (const dilation of [1, 2, 3])
          for (const [before, after] of [[0, 0], [1, 1], [0, 1], [2, 0], [3, 2]]) {
            const got = convOutputSize(inSize, kernel, stride, dilation, before, after);
            const want = slideCount(inSize, kernel, stride, dilation, before, after);
            if (got !== want) t.fail(`in ${inSize} k ${kernel} s ${stride} d ${dilation} pads ${before},${after}: ${got}, expected ${want}`);
            if (want === 0) empty++;
            checked++;
          }
  t.ok(empty > 0, `the sweep includes kernels that do not fit (${empty} of ${checked})`);
  t.equal(convOutputSize(7, 3, 2, 1, 1, 1), 4, '3x3 stride 2 pad 1 over 7');
  t.equal(convOutputSize(13, 5, 1, 2, 0, 0), 5, 'dilation 2 spans 9');
  t.equal(convOutputSize(3, 5, 1, 1, 0, 0), 0, 'never negative');
  t.equal(convOutputSize(1, 7, 2, 3, 0, 0), 0);
});

t.test("samePadding is the least padding that gives ceil(in / stride) outputs, the odd pixel after", async (t) => {
  for (let inSize = 1; inSize <= 15; inSize++)
    for (const kernel of [1, 2, 3, 4, 5, 7])
      for (const stride of [1, 2, 3])
        for (const dilation of [1, 2]) {
          const where = `in ${inSize} k ${kernel} s ${stride} d ${dilation}`;
          const [before, after] = samePadding(inSize, kernel, stride, dilation);
          const out = Math.ceil(inSize / stride);
          if (convOutputSize(inSize, kernel, stride, dilation, before, after) !== out) t.fail(`${where}: wrong output size`);
          if (after - before !== 0 && after - before !== 1) t.fail(`${where}: pads ${before},${after} not split TF's way`);
          const total = before + after;
          // One pixel less and the last window no longer fits: the padding is the least that works.
          if (total > 0 && slideCount(inSize, kernel, stride, dilation, 0, total - 1) >= out) t.fail(`${where}: padding ${total} is more than needed`);
          if (paddedOutputSize(inSize, kernel, stride, dilation, 'same') !== out) t.fail(`${where}: paddedOutputSize('same')`);
          const valid = paddedOutputSize(inSize, kernel, stride, dilation, 'valid');
          if (valid !== slideCount(inSize, kernel, stride, dilation, 0, 0)) t.fail(`${where}: paddedOutputSize('valid')`);
        }
  t.same(samePadding(8, 3, 2, 1), [0, 1], 'odd total: the extra pixel goes after');
  t.same(samePadding(4, 7, 1, 1), [3, 3]);
  t.same(samePadding(5, 1, 2, 1), [0, 0], 'a 1x1 needs none');
});

t.test('resolvePadding: valid, same per axis, explicit checked', async (t) => {
  t.same(resolvePadding(undefined, 9, 9, 3, 3), [0, 0, 0, 0]);
  t.same(resolvePadding('valid', 9, 9, 3, 3), [0, 0, 0, 0]);
  t.same(resolvePadding('same', 8, 7, 3, 1, [2, 2]), [0, 0, 1, 0]);
  t.same(resolvePadding('same', 9, 10, 3, 5, [1, 2], [2, 1]), [2, 1, 2, 2]);
  t.same(resolvePadding([1, 2, 3, 4], 9, 9, 3, 3), [1, 2, 3, 4]);
  t.throws(() => resolvePadding([1, -1, 0, 0], 9, 9, 3, 3), { code: 'ERANGE', message: /padding\.left/ });
  t.throws(() => resolvePadding([0, 0, 0.5, 0], 9, 9, 3, 3), { code: 'EINVAL', message: /padding\.bottom/ });
  t.throws(() => resolvePadding([0, 0, 0, MAX_DIM + 1], 9, 9, 3, 3), { code: 'ERANGE' });
  t.throws(() => resolvePadding('full' as 'same', 9, 9, 3, 3), { code: 'EINVAL', message: /padding must be/ });
});

/** A 3x3 conv over 9x9, valid, stride 1, with `over` changed. */
function layerGeometry(over: Partial<LayerGeometry>): LayerGeometry {
  return { name: 'l', n: 4, c: 3, kh: 3, kw: 3, groups: 1, strides: [1, 1], dilations: [1, 1], pads: [0, 0, 0, 0], inH: 9, inW: 9, outH: 7, outW: 7, ...over };
}

t.test('spatialIntermediateSize: the vertical stage is strided and padded vertically only', async (t) => {
  const layer = layerGeometry({ kw: 5, strides: [2, 3], dilations: [2, 1], pads: [1, 2, 0, 2], inH: 11, inW: 9 });
  t.same(spatialIntermediateSize(layer), { h: slideCount(11, 3, 2, 2, 1, 0), w: 9 });
});

/** Numerical rank of a rows x cols matrix (row-major), by elimination with full pivoting. */
function numericalRank(m: Float64Array, rows: number, cols: number): number {
  const a = Float64Array.from(m);
  const scale = a.reduce((s, v) => Math.max(s, Math.abs(v)), 0);
  let rank = 0;
  const usedRow = new Array<boolean>(rows).fill(false);
  const usedCol = new Array<boolean>(cols).fill(false);
  for (;;) {
    let best = 0;
    let pr = -1;
    let pc = -1;
    for (let r = 0; r < rows; r++)
      if (!usedRow[r])
        for (let c = 0; c < cols; c++)
          if (!usedCol[c] && Math.abs(a[r * cols + c]) > best) [best, pr, pc] = [Math.abs(a[r * cols + c]), r, c];
    if (pr < 0 || best <= 1e-9 * scale) return rank;
    usedRow[pr] = usedCol[pc] = true;
    rank++;
    for (let r = 0; r < rows; r++) {
      if (usedRow[r]) continue;
      const f = a[r * cols + pc] / a[pr * cols + pc];
      for (let c = 0; c < cols; c++) a[r * cols + c] -= f * a[pr * cols + c];
    }
  }
}

/** The matrix each method factors, from OIHW weights: its rank is the largest useful rank or width. */
function methodMatrices(w: Float32Array, s: ConvShape, method: Method): Array<{ m: Float64Array; rows: number; cols: number }> {
  const { n, c, kh, kw } = s;
  const at = (o: number, i: number, y: number, x: number) => w[((o * c + i) * kh + y) * kw + x];
  if (method === 'dac') {
    // one n x (kh*kw) slice per input channel
    return Array.from({ length: c }, (_, i) => {
      const m = new Float64Array(n * kh * kw);
      for (let o = 0; o < n; o++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) m[(o * kh + y) * kw + x] = at(o, i, y, x);
      return { m, rows: n, cols: kh * kw };
    });
  }
  if (method === 'spatial') {
    // rows (input channel, tap row), columns (output channel, tap column)
    const m = new Float64Array(c * kh * n * kw);
    for (let o = 0; o < n; o++)
      for (let i = 0; i < c; i++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) m[(i * kh + y) * n * kw + o * kw + x] = at(o, i, y, x);
    return [{ m, rows: c * kh, cols: n * kw }];
  }
  return [{ m: Float64Array.from(w), rows: n, cols: c * kh * kw }];
}

// [n, c, kh, kw]: n below and above kh*kw, c*kh below and above n*kw, non-square kernels.
const SHAPES: ConvShape[] = [
  [8, 4, 3, 3],
  [3, 5, 3, 3],
  [6, 2, 1, 7],
  [2, 1, 5, 5],
  [10, 3, 2, 1],
  [1, 6, 3, 2],
].map(([n, c, kh, kw]) => ({ n, c, kh, kw }));
const METHODS: Method[] = ['dac', 'spatial', 'channel'];

t.test('maxRank is the rank of the matrix each method factors, for generic weights', async (t) => {
  SHAPES.forEach((s, k) => {
    const w = seededValues(s.n * s.c * s.kh * s.kw, 100 + k);
    for (const method of METHODS) {
      const ranks = methodMatrices(w, s, method).map(({ m, rows, cols }) => numericalRank(m, rows, cols));
      t.equal(maxRank(s, method), Math.max(...ranks), `${method} ${JSON.stringify(s)}`);
    }
  });
});

t.test('maxRank is the bound every backend enforces', async (t) => {
  const backends = availableBackends();
  if (backends.length === 0) {
    t.fail('no backend loads here');
    return;
  }
  for (const b of backends) {
    for (const s of SHAPES.slice(0, 3)) {
      const w = seededValues(s.n * s.c * s.kh * s.kw, 7);
      const calls: Record<Method, (r: number) => unknown> = {
        dac: (r) => b.decomposeDac(w, s, r),
        spatial: (r) => b.decomposeSpatial(w, s, r),
        channel: (r) => b.decomposeChannel(w, s, r),
      };
      for (const method of METHODS) {
        const max = maxRank(s, method);
        t.doesNotThrow(() => calls[method](max), `${b.name} ${method} at ${max}`);
        t.throws(() => calls[method](max + 1), { code: 'ERANGE' }, `${b.name} ${method} past ${max}`);
      }
    }
  }
});

t.test('maxReplacementRank: the widths of the trivial exact constructions, which are exact', async (t) => {
  const s = { n: 3, c: 2, kh: 2, kw: 3 };
  const w = seededValues(s.n * s.c * s.kh * s.kw, 9);
  const T = s.kh * s.kw;
  t.equal(maxReplacementRank(s, 'dac'), Math.max(s.n, T));
  t.equal(maxReplacementRank(s, 'spatial'), Math.max(s.c * s.kh, s.n * s.kw));
  t.equal(maxReplacementRank(s, 'channel'), Math.max(s.n, s.c * T));
  for (const method of METHODS) t.ok(maxReplacementRank(s, method) >= maxRank(s, method), `${method}: never below maxRank`);
  // DAC at rank n: depthwise filter m of channel i is W[m][i], the pointwise picks m = o.
  const depthwise = new Float32Array(s.c * s.n * T);
  const pointwise = new Float32Array(s.n * s.c * s.n);
  for (let i = 0; i < s.c; i++) for (let m = 0; m < s.n; m++) for (let p = 0; p < T; p++) depthwise[(i * s.n + m) * T + p] = w[(m * s.c + i) * T + p];
  for (let o = 0; o < s.n; o++) for (let i = 0; i < s.c; i++) pointwise[o * s.c * s.n + i * s.n + o] = 1;
  t.same(reconstructWeights({ method: 'dac', name: 'x', rank: s.n, depthwise, pointwise, bias: null }, s), w, 'DAC at rank n rebuilds W');
  // Channel at width c*kh*kw: the first stage is the identity on (channel, tap), the second is W.
  const cols = s.c * T;
  const first = new Float32Array(cols * cols);
  for (let q = 0; q < cols; q++) first[q * cols + q] = 1;
  t.same(reconstructWeights({ method: 'channel', name: 'x', width: cols, first, second: w, bias: null }, s), w, 'channel at c*kh*kw rebuilds W');
});

t.test('checkRank: an integer in 1..max, named rank or width', async (t) => {
  t.equal(checkRank(8, 'dac', 8), 8, 'the bound itself is taken');
  t.equal(checkRank(1, 'channel', 8), 1);
  t.throws(() => checkRank(9, 'dac', 8), { code: 'ERANGE', message: /rank must be an integer in 1\.\.8, got 9/ });
  t.throws(() => checkRank(0, 'spatial', 12, { layer: 'b1' }), { code: 'ERANGE', message: /layer b1.*width must be an integer in 1\.\.12/ });
  t.throws(() => checkRank(1.5, 'channel', 8), { code: 'EINVAL', message: /width/ });
  t.throws(() => checkRank('2', 'dac', 8), { code: 'EINVAL' });
});

t.test('checkInt and checkShape: EINVAL for the wrong kind, ERANGE for out of range', async (t) => {
  t.equal(checkInt(3, 'x', 1, 3), 3);
  t.throws(() => checkInt(4, 'x', 1, 3), { code: 'ERANGE', message: /x must be in 1\.\.3, got 4/ });
  t.throws(() => checkInt(NaN, 'x', 1, 3), { code: 'EINVAL' });
  t.throws(() => checkInt('3', 'x', 1, 3), { code: 'EINVAL' });
  t.same(checkShape({ n: 2, c: 3, kh: 4, kw: 5, extra: 1 }), { n: 2, c: 3, kh: 4, kw: 5 }, 'only the four fields come back');
  t.throws(() => checkShape(null), { code: 'EINVAL', message: /shape must be an object/ });
  t.throws(() => checkShape({ n: 2, c: 0, kh: 3, kw: 3 }), { code: 'ERANGE', message: /shape\.c/ });
  t.throws(() => checkShape({ n: 2, c: 2, kh: MAX_KERNEL + 1, kw: 3 }), { code: 'ERANGE', message: /shape\.kh/ });
  t.throws(() => checkShape({ n: MAX_DIM + 1, c: 1, kh: 1, kw: 1 }), { code: 'ERANGE', message: /shape\.n/ });
  t.throws(() => checkShape({ n: 1 << 16, c: 1 << 16, kh: 1, kw: 1 }), { code: 'ERANGE', message: /2\^31-1/ });
});

t.test('checkLayerGeometry names the layer and the field', async (t) => {
  const layer = layerGeometry({ name: 'conv3', n: 8, c: 4, groups: 2 });
  t.doesNotThrow(() => checkLayerGeometry(layer));
  t.throws(() => checkLayerGeometry({ ...layer, outW: 0 }), { code: 'ERANGE', message: /layer conv3, field outW/ });
  t.throws(() => checkLayerGeometry({ ...layer, kh: 2.5 }), { code: 'EINVAL', message: /field kh/ });
  t.throws(() => checkLayerGeometry({ ...layer, groups: 3 }, { model: 'm' }), {
    name: 'DacError',
    code: 'EINVAL',
    context: { model: 'm', layer: 'conv3', field: 'groups' },
  });
});

t.test('OIHW <-> HWIO: index formulas and round trips, the DAC factors included', async (t) => {
  const [cout, cin, kh, kw] = [5, 3, 2, 4];
  const w = seededValues(cout * cin * kh * kw, 3);
  const hwio = oihwToHwio(w, cout, cin, kh, kw);
  let wrong = 0;
  for (let o = 0; o < cout; o++)
    for (let i = 0; i < cin; i++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++) if (hwio[((y * kw + x) * cin + i) * cout + o] !== w[((o * cin + i) * kh + y) * kw + x]) wrong++;
  t.equal(wrong, 0, 'every OIHW element lands at its HWIO index');
  t.same(hwioToOihw(hwio, kh, kw, cin, cout), w, 'HWIO -> OIHW undoes it');
  t.same(oihwToHwio(hwioToOihw(w, kh, kw, cin, cout), cout, cin, kh, kw), w, 'and the other way round');

  // DAC's depthwise [c*r][kh*kw] as OIHW with c*r outputs of one input is Keras' [kh][kw][c][r].
  const [c, r] = [3, 2];
  const dw = seededValues(c * r * kh * kw, 4);
  const keras = oihwToHwio(dw, c * r, 1, kh, kw);
  wrong = 0;
  for (let i = 0; i < c; i++)
    for (let m = 0; m < r; m++)
      for (let p = 0; p < kh * kw; p++) if (keras[(p * c + i) * r + m] !== dw[(i * r + m) * kh * kw + p]) wrong++;
  t.equal(wrong, 0, 'depthwise [c*r][kh*kw] -> [kh][kw][c][r]');
  t.same(hwioToOihw(keras, kh, kw, 1, c * r), dw);
});
