// The error model's channel mixings by channel (mixRows, mixTensor with a
// dense channel factor, outputEnergy) and the spectra's matrices
// (spectralMatrix) against their definitions on small hand-built tensors,
// dense and diagonal, on every backend that loads.
import t from 'tap';
import { availableBackends } from '../src/index.js';
import { mixChannels, mixRows, transposeBlocks } from '../src/plan/linalg.js';
import { LayerErrorModel, mixTensor } from '../src/plan/error-model.js';
import type { InputModel } from '../src/plan/stats.js';
import { convLayer } from './helpers/conv-layer.js';
import { mulberry32 } from '../src/random.js';

const backends = availableBackends();

function randomArray(length: number, seed: number): Float64Array {
  const rand = mulberry32(seed);
  return Float64Array.from({ length }, () => rand() * 2 - 1);
}

function diagonalOf(a: Float64Array, m: number): Float64Array {
  return Float64Array.from({ length: m * m }, (_, q) => (Math.floor(q / m) === q % m ? a[q] : 0));
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return a.length === b.length ? d / (s || 1) : Infinity;
}


t.test('mixRows: the channel mixing of a tensor kept by channel = mixChannels transposed (dense and diagonal)', { skip: backends.length === 0 && 'no backend loads' }, async (t) => {
  const [rows, ch, K] = [3, 4, 5];
  const w = randomArray(rows * ch * K, 1);
  for (const backend of backends) {
    for (const diagonal of [false, true]) {
      const M = diagonal ? diagonalOf(randomArray(ch * ch, 2), ch) : randomArray(ch * ch, 2);
      // the definition: out[j, i', t] = sum_i w[j, i, t] M[i, i']
      const want = new Float64Array(rows * ch * K);
      for (let j = 0; j < rows; j++)
        for (let i2 = 0; i2 < ch; i2++)
          for (let u = 0; u < K; u++) {
            let s = 0;
            for (let i = 0; i < ch; i++) s += w[(j * ch + i) * K + u] * M[i * ch + i2];
            want[(j * ch + i2) * K + u] = s;
          }
      const label = `${backend.name} ${diagonal ? 'diagonal' : 'dense'}`;
      t.ok(maxRelDiff(mixChannels(backend, w, rows, ch, K, M), want) < 1e-14, `${label}: mixChannels`);
      const byChannel = mixRows(backend, transposeBlocks(w, rows, ch, K), ch, rows * K, M);
      t.ok(maxRelDiff(transposeBlocks(byChannel, ch, rows, K), want) < 1e-14, `${label}: mixRows by channel`);
    }
  }
});

t.test('mixTensor: the dense channel factor by channel = the definition', { skip: backends.length === 0 && 'no backend loads' }, async (t) => {
  const [rows, ch, kh, kw] = [3, 4, 2, 3];
  const w = Float32Array.from(randomArray(rows * ch * kh * kw, 3));
  const Mc = randomArray(ch * ch, 4);
  const Mh = randomArray(kh * kh, 5);
  const Mw = randomArray(kw * kw, 6);
  const scale = (j: number) => 1 + j;
  const want = new Float64Array(rows * ch * kh * kw);
  for (let j = 0; j < rows; j++)
    for (let i2 = 0; i2 < ch; i2++)
      for (let y2 = 0; y2 < kh; y2++)
        for (let x2 = 0; x2 < kw; x2++) {
          let s = 0;
          for (let i = 0; i < ch; i++)
            for (let y = 0; y < kh; y++)
              for (let x = 0; x < kw; x++) s += w[((j * ch + i) * kh + y) * kw + x] * Mc[i * ch + i2] * Mh[y * kh + y2] * Mw[x * kw + x2];
          want[((j * ch + i2) * kh + y2) * kw + x2] = scale(j) * s;
        }
  for (const backend of backends) {
    t.ok(maxRelDiff(mixTensor(backend, w, rows, ch, kh, kw, Mc, Mh, Mw, scale), want) < 1e-13, `${backend.name}: all three factors`);
    // without tap factors: channels alone
    const channelsOnly = mixTensor(backend, w, rows, ch, kh, kw, Mc, null, null, null);
    t.ok(maxRelDiff(channelsOnly, mixChannels(backend, w, rows, ch, kh * kw, Mc)) < 1e-14, `${backend.name}: channels only`);
  }
});

t.test('outputEnergy: w_j Sigma w_j^T by channel, the layer\'s own kept through release()', { skip: backends.length === 0 && 'no backend loads' }, async (t) => {
  const [n, c] = [5, 4];
  const rand = mulberry32(7);
  const layer = convLayer({ name: 'conv', n, c, kh: 3, kw: 3, inH: 8, inW: 8, outH: 8, outW: 8, weights: Float32Array.from({ length: n * c * 9 }, () => rand() * 2 - 1) });
  // A dense and positive definite; taps correlated.
  const X = randomArray(c * c, 8);
  const A = Float64Array.from({ length: c * c }, (_, q) => {
    const [i, k] = [Math.floor(q / c), q % c];
    let s = i === k ? 0.5 : 0;
    for (let u = 0; u < c; u++) s += X[i * c + u] * X[k * c + u];
    return s;
  });
  const T = Float64Array.from([1, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 1]);
  const ones = new Float64Array(9).fill(1);
  const input: InputModel = { A, mean: new Float64Array(c), th: T, tw: T, validH: ones.subarray(0, 3), validW: ones.subarray(0, 3), pairH: ones, pairW: ones, source: 'batchnorm' };
  for (const backend of backends) {
    const model = new LayerErrorModel(layer, input, false, backend);
    // the definition, with Sigma = (L L^T) (x) (Lh Lh^T) (x) (Lw Lw^T) from the model's own factors
    const gram = (L: Float64Array, m: number) =>
      Float64Array.from({ length: m * m }, (_, q) => {
        let s = 0;
        for (let u = 0; u < m; u++) s += L[Math.floor(q / m) * m + u] * L[(q % m) * m + u];
        return s;
      });
    const [Ac, Ah, Aw] = [gram(model.mc, c), gram(model.mh, 3), gram(model.mw, 3)];
    const want = new Float64Array(n);
    const w = layer.weights;
    for (let j = 0; j < n; j++)
      for (let p = 0; p < c * 9; p++)
        for (let q = 0; q < c * 9; q++) {
          const [i, y, x] = [Math.floor(p / 9), Math.floor(p / 3) % 3, p % 3];
          const [i2, y2, x2] = [Math.floor(q / 9), Math.floor(q / 3) % 3, q % 3];
          want[j] += w[j * c * 9 + p] * Ac[i * c + i2] * Ah[y * 3 + y2] * Aw[x * 3 + x2] * w[j * c * 9 + q];
        }
    const first = model.outputEnergy(layer.weights);
    t.ok(maxRelDiff(first, want) < 1e-12, `${backend.name}: the definition`);
    t.ok(maxRelDiff(model.outputEnergy(Float32Array.from(w)), want) < 1e-12, `${backend.name}: another array with the same values`);
    first.fill(0);
    model.release();
    t.same(model.outputEnergy(layer.weights), model.outputEnergy(Float32Array.from(w)), `${backend.name}: kept through release(), a copy the caller may change`);
  }
});

t.test('spectralMatrix: one pass from the weights where every factor is diagonal, W~ rearranged otherwise', { skip: backends.length === 0 && 'no backend loads' }, async (t) => {
  // Odd shapes, and n*kw (10) != c*kh (9), so the two layouts differ in shape too.
  const [n, c, kh, kw] = [5, 3, 3, 2];
  const K = kh * kw;
  const rand = mulberry32(11);
  const values = (length: number, lo: number) => Float32Array.from({ length }, () => lo + rand());
  const layer = convLayer({
    name: 'odd',
    n,
    c,
    kh,
    kw,
    inH: 7,
    inW: 7,
    outH: 7,
    outW: 8,
    weights: Float32Array.from({ length: n * c * K }, () => rand() * 2 - 1),
    // D not uniform: one scale per output.
    bnAfter: { gamma: values(n, 0.5), beta: values(n, -0.5), mean: values(n, -0.5), variance: values(n, 0.2), epsilon: 1e-5 },
  });
  const diag = (v: ArrayLike<number>) => diagonalOf(Float64Array.from({ length: v.length * v.length }, (_, q) => v[q % v.length]), v.length);
  const input = (A: Float64Array, th: Float64Array, tw: Float64Array): InputModel => ({
    A,
    mean: new Float64Array(c),
    th,
    tw,
    validH: new Float64Array(kh).fill(1),
    validW: new Float64Array(kw).fill(1),
    pairH: new Float64Array(kh * kh).fill(1),
    pairW: new Float64Array(kw * kw).fill(1),
    source: 'batchnorm',
  });
  const diagonalInput = input(diag([0.7, 1.3, 2.1]), diag([0.9, 1.1, 1.6]), diag([1.2, 0.8]));
  const denseInput = input(diag([0.7, 1.3, 2.1]), Float64Array.from([1, 0.5, 0.25, 0.5, 1, 0.5, 0.25, 0.5, 1]), diag([1.2, 0.8]));
  const mismatches = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let bad = a.length === b.length ? 0 : 1;
    for (let q = 0; q < Math.min(a.length, b.length); q++) if (!Object.is(a[q], b[q])) bad++;
    return bad;
  };
  // Eigenvalues of the smaller Gram matrix of M (rows x cols, or held transposed).
  const spectrum = (backend: (typeof backends)[number], M: Float64Array, rows: number, cols: number, transposed = false) => {
    const [m, k] = [Math.min(rows, cols), Math.max(rows, cols)];
    const G = backend.matmul(M, M, m, m, k, rows <= cols !== transposed ? { transB: true } : { transA: true });
    return backend.symmetricEigenvalues(G, m);
  };
  for (const backend of backends) {
    for (const [label, inputModel] of [['diagonal', diagonalInput], ['correlated taps', denseInput]] as const) {
      const model = new LayerErrorModel(layer, inputModel, false, backend);
      // Today's matrices: W~ by mixTensor, and its spatial rearrangement by transposeBlocks.
      const wt = mixTensor(backend, layer.weights, n, c, kh, kw, model.mc, model.mh, model.mw, (j) => model.d[j]);
      const spatial = transposeBlocks(wt, n, c * kh, kw);
      const s = model.spectralMatrix('spatial');
      const ch = model.spectralMatrix('channel');
      if (label === 'diagonal') {
        // The spatial matrix transposed, bit for bit: row (j, x), column (i, y).
        const want = Float64Array.from({ length: n * kw * c * kh }, (_, q) => spatial[(q % (c * kh)) * n * kw + Math.floor(q / (c * kh))]);
        t.same([s.rows, s.cols, s.transposed], [c * kh, n * kw, true], `${backend.name} ${label}: the spatial matrix, held transposed`);
        t.equal(mismatches(s.M, want), 0, `${backend.name} ${label}: one pass = mixTensor + transposeBlocks, bit for bit`);
        t.equal(ch.M, s.M, `${backend.name} ${label}: the channel spectrum reads the same array`);
        // Its columns are W~'s permuted: the same singular values.
        const rel = maxRelDiff(spectrum(backend, ch.M, ch.rows, ch.cols), spectrum(backend, wt, n, c * K));
        t.ok(rel < 1e-12, `${backend.name} ${label}: channel spectrum unchanged (${rel})`);
      } else {
        t.same([s.rows, s.cols, s.transposed], [c * kh, n * kw, false], `${backend.name} ${label}: the general path`);
        t.equal(mismatches(s.M, spatial), 0, `${backend.name} ${label}: spatial = mixTensor + transposeBlocks`);
        t.equal(mismatches(ch.M, wt), 0, `${backend.name} ${label}: channel = mixTensor`);
      }
      const rel = maxRelDiff(spectrum(backend, s.M, s.rows, s.cols, s.transposed), spectrum(backend, spatial, c * kh, n * kw));
      t.ok(rel < 1e-12, `${backend.name} ${label}: spatial spectrum unchanged (${rel})`);
    }
  }
});
