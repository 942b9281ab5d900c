// The loader: which backend runs, forcing one, falling back, and the errors.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { availableBackends, Backend, backendInfo, getBackend } from '../src/index.js';
import { checkContract, OP_NAMES } from '../src/backend/binding.js';
import { loadedAddon } from '../src/backend/native.js';
import { mulberry32 } from '../src/random.js';

const root = path.resolve(__dirname, '..');

/** Runs a snippet against the library in a fresh process with the given env. */
function probe(code: string, env: Record<string, string>): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr };
}

const infoSnippet = `const m = require('./src/index.ts'); console.log(JSON.stringify(m.backendInfo()));`;

t.test('at least one backend loads, and CI has both', async (t) => {
  const names = availableBackends().map((b) => b.name);
  t.ok(names.length >= 1, `loaded: ${names.join(', ')}`);
  if (process.env.CI) t.same(names.sort(), ['native', 'wasm'], 'CI builds native and WASM');
});

t.test('backendInfo says which backend runs, its ISA and kernels', async (t) => {
  const info = backendInfo();
  t.match(info.backend, /^(native|wasm)$/);
  t.match(info.version, /^\d+\.\d+\.\d+/);
  t.type(info.isa, 'string');
  t.ok(info.kernels.dwpwVariants.includes('ref'), 'reference kernel is always available');
  t.ok(info.kernels.dwpwVariants.includes(info.kernels.dwpw), 'chosen variant is one of the available ones');
  for (const b of availableBackends()) {
    const i = b.info();
    t.equal(i.backend, b.name);
    if (b.name === 'wasm') t.match(i.isa, /^wasm32/);
  }
});

t.test('every kernel family lists its variants, ref first and the default last', async (t) => {
  for (const b of availableBackends()) {
    const k = b.info().kernels;
    for (const [list, best] of [[k.dwpwVariants, k.dwpw], [k.conv2dVariants, k.conv2d], [k.dacVariants, k.dac]] as const) {
      t.equal(list[0], 'ref', `${b.name}: ${list.join(',')}`);
      t.equal(list[list.length - 1], best, `${b.name}: the default is the last`);
    }
  }
});

t.test('a binary whose op tables differ from OPS is refused, naming the field', async (t) => {
  const native = availableBackends().find((b) => b.name === 'native');
  if (!native || !loadedAddon) return t.pass('no native addon here');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const tables = (require(loadedAddon) as { contract(): string[] }).contract();
  const layouts = checkContract(tables);
  t.same(Object.keys(layouts).sort(), [...OP_NAMES].sort(), 'every op of OPS is in the binary');
  for (const op of OP_NAMES) {
    for (const f of layouts[op].fields) {
      if (!(f.offset >= 0 && f.offset < layouts[op].size && f.lengthOffset < layouts[op].size)) t.fail(`${op}.${f.name} lies outside its struct`);
    }
  }
  const edit = (from: string, to: string) => tables.map((x) => x.replace(from, to));
  t.throws(() => checkContract(edit(';rank 0 ', ';rank 1 ')), /out of date: decomposeDac\.rank is missing or of another kind/);
  t.throws(() => checkContract(edit('gemm ', 'gemm2 ')), /out of date: no gemm/);
  t.throws(() => checkContract(edit(';ridge ', ';ridge 1 0 -1;alpha ')), /cholesky has fields alpha/);
});

t.test('an error from the core leaves Backend as one DacError with its context', async (t) => {
  for (const b of availableBackends()) {
    const failing = new Backend({
      ...b.binding,
      gemm: () => {
        throw new Error('gemm: out of memory for the product');
      },
    });
    const I = Float64Array.from([1, 0, 0, 1]);
    t.throws(() => failing.matmul(I, I, 2, 2, 2, { context: { model: 'm', layer: 'conv1' } }), {
      name: 'DacError',
      code: 'EKERNEL',
      message: /model m, layer conv1: gemm: out of memory for the product/,
    }, `${b.name}: EKERNEL with the caller's context`);
  }
});

t.test('DAC_BACKEND forces a backend', async (t) => {
  for (const b of availableBackends()) {
    const r = probe(infoSnippet, { DAC_BACKEND: b.name });
    t.equal(r.status, 0, r.err);
    t.equal(JSON.parse(r.out).backend, b.name);
  }
});

t.test('a bad DAC_BACKEND value is a clear error', async (t) => {
  const r = probe(infoSnippet, { DAC_BACKEND: 'cuda' });
  t.not(r.status, 0);
  t.match(r.err, /DAC_BACKEND must be 'native' or 'wasm', got 'cuda'/);
});

t.test('without the addon, the facade falls back to WASM and says why', async (t) => {
  const r = probe(infoSnippet, { DAC_ADDON_PATH: path.join(root, 'no-such-addon.node'), DAC_BACKEND: '' });
  t.equal(r.status, 0, r.err);
  const info = JSON.parse(r.out);
  t.equal(info.backend, 'wasm');
  t.equal(info.skipped[0].backend, 'native');
  t.match(info.skipped[0].reason, /no-such-addon\.node: not built/);
});

t.test('an addon built from older sources is refused whole, naming what it lacks', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-stale-addon-'));
  const stale = path.join(dir, 'stale.js');
  // require() takes a .js file like a .node one: an "addon" from before the linear algebra existed
  fs.writeFileSync(stale, "for (const f of ['info', 'decomposeDac', 'decomposeDacBatch', 'decomposeSpatial', 'decomposeChannel', 'dwpw', 'conv2d']) exports[f] = () => {};\n");
  try {
    const r = probe(infoSnippet, { DAC_ADDON_PATH: stale, DAC_BACKEND: '' });
    t.equal(r.status, 0, r.err);
    const info = JSON.parse(r.out);
    t.equal(info.backend, 'wasm');
    t.match(info.skipped[0].reason, /stale\.js: out of date, no mapLargeAllocations, gemm, cholesky, triangularSolve, symmetricEigenvalues, dacPairEnergy \(rebuild it/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

t.test('forcing an unavailable backend names every failure', async (t) => {
  const r = probe(infoSnippet, { DAC_ADDON_PATH: path.join(root, 'no-such-addon.node'), DAC_BACKEND: 'native' });
  t.not(r.status, 0);
  t.match(r.err, /backend 'native' is unavailable: native addon unavailable \(.*no-such-addon\.node: not built\)/);
});

t.test('no backend at all: one error listing each failure', async (t) => {
  const r = probe(infoSnippet, {
    DAC_ADDON_PATH: path.join(root, 'no-such-addon.node'),
    DAC_WASM_DIR: path.join(root, 'no-such-wasm'),
    DAC_BACKEND: '',
  });
  t.not(r.status, 0);
  t.match(r.err, /no dac-conv backend could be loaded \(native: .*; wasm: WASM module missing/);
});

t.test('mapLargeAllocations: taken by glibc, declined by WASM, arguments checked (in a child: it is process-wide)', async (t) => {
  const snippet = (backend: string) =>
    `const { getBackend } = require('./src/index.ts');
     const b = getBackend('${backend}');
     const errs = [-1, 1.5, 2 ** 31, NaN, '4096'].map((v) => { try { b.mapLargeAllocations(v); return null; } catch (e) { return e.code + ' ' + e.message; } });
     console.log(JSON.stringify({ taken: b.mapLargeAllocations(128 * 1024), errs }));`;
  const glibc = !!(process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime;
  for (const { name } of availableBackends()) {
    const r = probe(snippet(name), { DAC_BACKEND: '' });
    t.equal(r.status, 0, r.err);
    const out = JSON.parse(r.out) as { taken: boolean; errs: (string | null)[] };
    t.equal(out.taken, name === 'native' && glibc, `${name}: taken only by native on glibc`);
    t.equal(out.errs.filter((e) => e && /^E(INVAL|RANGE) field bytes: /.test(e)).length, 5, `${name}: every bad value refused naming the field: ${out.errs.join('; ')}`);
  }
});

t.test('getBackend rejects unknown names', async (t) => {
  t.throws(() => getBackend('gpu' as never), /backend must be 'native' or 'wasm'/);
});

// Dense double-precision linear algebra (planning's GEMM, Cholesky, triangular solves), on every backend.

/** Uniform in [-0.5, 0.5). */
function rand(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() - 0.5;
}

function randomMatrix(rows: number, cols: number, r: () => number): Float64Array {
  return Float64Array.from({ length: rows * cols }, r);
}

/** Reference Cholesky with the documented semantics: ridge * mean diagonal added, pivots below 1e-6 of it dropped. */
function referenceCholesky(a: Float64Array, m: number, ridge: number): Float64Array {
  const L = new Float64Array(m * m);
  let mean = 0;
  for (let i = 0; i < m; i++) mean += a[i * m + i];
  mean /= m;
  const add = ridge * (mean > 0 ? mean : 1);
  const floor = add > 0 ? add * 1e-6 : 1e-300;
  const dropped: boolean[] = [];
  for (let j = 0; j < m; j++) {
    let s = a[j * m + j] + add;
    for (let k = 0; k < j; k++) s -= L[j * m + k] * L[j * m + k];
    dropped[j] = s < floor;
    L[j * m + j] = Math.sqrt(dropped[j] ? floor : s);
    for (let i = j + 1; i < m; i++) {
      let v = a[i * m + j];
      for (let k = 0; k < j; k++) v -= L[i * m + k] * L[j * m + k];
      L[i * m + j] = dropped[j] ? 0 : v / L[j * m + j];
    }
  }
  return L;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

t.test('matmul: every transpose combination, odd and empty shapes (every backend)', async (t) => {
  const r = rand(1);
  for (const b of availableBackends()) {
    for (const [m, n, k] of [
      [1, 1, 1],
      [5, 3, 7],
      [17, 2, 9],
      [3, 70, 65],
      [4, 6, 0],
      [0, 5, 3],
    ]) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const a = randomMatrix(m, k, r);
          const bb = randomMatrix(k, n, r);
          const want = new Float64Array(m * n);
          for (let i = 0; i < m; i++)
            for (let j = 0; j < n; j++)
              for (let q = 0; q < k; q++) {
                want[i * n + j] += (transA ? a[q * m + i] : a[i * k + q]) * (transB ? bb[j * k + q] : bb[q * n + j]);
              }
          const got = b.matmul(a, bb, m, n, k, { transA, transB });
          t.equal(got.length, m * n);
          t.ok(maxAbsDiff(got, want) < 1e-12, `${b.name} ${m}x${n}x${k} transA=${transA} transB=${transB}`);
        }
      }
    }
    // Into a given array (a slice of a batch): the same product there, the rest untouched; never over an input.
    {
      const a = randomMatrix(5, 7, r);
      const bb = randomMatrix(7, 3, r);
      const batch = new Float64Array(40).fill(-1);
      const got = b.matmul(a, bb, 5, 3, 7, { out: batch.subarray(10, 25) });
      t.ok(got.buffer === batch.buffer && got.byteOffset === 80, `${b.name}: the product is written where asked`);
      t.ok(maxAbsDiff(got, b.matmul(a, bb, 5, 3, 7)) === 0 && batch.subarray(0, 10).every((v) => v === -1) && batch.subarray(25).every((v) => v === -1), `${b.name}: same values, nothing else written`);
      t.throws(() => b.matmul(a, bb, 5, 3, 7, { out: new Float64Array(14) }), { code: 'ESHAPE' }, `${b.name}: out of the wrong length`);
      t.throws(() => b.matmul(a, a.subarray(0, 21), 5, 3, 7, { out: a.subarray(20, 35) }), { code: 'EALIAS' }, `${b.name}: out over an input`);
    }
    // Two views from the start of one buffer (one address, other row counts): a product, not a Gram matrix.
    for (const [m, n, k] of [
      [3, 70, 9],
      [70, 3, 9],
      [6, 6, 4],
    ]) {
      const f = randomMatrix(Math.max(m, n), k, r);
      const a = f.subarray(0, m * k);
      const bt = f.subarray(0, n * k);
      const want = new Float64Array(m * n);
      for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let q = 0; q < k; q++) want[i * n + j] += a[i * k + q] * bt[j * k + q];
      t.ok(maxAbsDiff(b.matmul(a, bt, m, n, k, { transB: true }), want) < 1e-12, `${b.name} ${m}x${n}x${k}: A B^T over one buffer`);
      // A^T B with A = [k][n] and B = [k][m] viewing the same buffer's start.
      const at = f.subarray(0, k * n);
      const b2 = f.subarray(0, k * m);
      const wantTa = new Float64Array(n * m);
      for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) for (let q = 0; q < k; q++) wantTa[i * m + j] += at[q * n + i] * b2[q * m + j];
      t.ok(maxAbsDiff(b.matmul(at, b2, n, m, k, { transA: true }), wantTa) < 1e-12, `${b.name} ${n}x${m}x${k}: A^T B over one buffer`);
    }
  }
});

t.test('dacPairEnergy: the three sums by their definition, both layouts, scales, threads (every backend)', async (t) => {
  const r = rand(7);
  for (const b of availableBackends()) {
    for (const [n, c, kh, kw, rank] of [
      [1, 1, 1, 1, 1],
      [7, 5, 3, 3, 2],
      [13, 3, 1, 7, 7],
      [4, 11, 5, 2, 4],
    ]) {
      const K = kh * kw;
      const weights = Float32Array.from({ length: n * c * K }, r);
      const depthwise = Float32Array.from({ length: c * rank * K }, r);
      const pointwise = Float32Array.from({ length: n * c * rank }, r);
      const tapScale = Float64Array.from({ length: K }, () => 1.5 + r());
      const channelScale = Float64Array.from({ length: c }, r);
      const want = { energy: new Float64Array(n), approxEnergy: new Float64Array(n), residual: new Float64Array(n), plain: new Float64Array(n) };
      for (let j = 0; j < n; j++)
        for (let i = 0; i < c; i++)
          for (let q = 0; q < K; q++) {
            let wp = 0;
            for (let m = 0; m < rank; m++) wp += pointwise[(j * c + i) * rank + m] * depthwise[(i * rank + m) * K + q];
            const w = weights[(j * c + i) * K + q];
            const s = channelScale[i] * tapScale[q];
            want.energy[j] += (s * w) ** 2;
            want.approxEnergy[j] += (s * wp) ** 2;
            want.residual[j] += (w - wp) ** 2;
            want.plain[j] += w * w;
          }
      const hwio = new Float32Array(weights.length);
      for (let j = 0; j < n; j++) for (let i = 0; i < c; i++) for (let q = 0; q < K; q++) hwio[(q * c + i) * n + j] = weights[(j * c + i) * K + q];
      const close = (got: Float64Array, expect: Float64Array) => got.every((v, j) => Math.abs(v - expect[j]) <= 1e-12 * Math.abs(expect[j]));
      const shape = { n, c, kh, kw };
      const label = `${b.name} ${JSON.stringify(shape)} r=${rank}`;
      for (const [layout, w] of [['OIHW', weights], ['HWIO', hwio]] as const) {
        const got = b.dacPairEnergy(w, shape, { rank, depthwise, pointwise }, { layout, tapScale, channelScale, threads: 3 });
        t.ok(close(got.energy, want.energy) && close(got.approxEnergy, want.approxEnergy) && close(got.residual, want.residual), `${label} ${layout}`);
      }
      // Without scales: the plain squared norms.
      const plain = b.dacPairEnergy(weights, shape, { rank, depthwise, pointwise });
      t.ok(close(plain.energy, want.plain) && close(plain.residual, want.residual), `${label} unit scales`);
    }
    const shape = { n: 4, c: 2, kh: 3, kw: 3 };
    const pair = { rank: 2, depthwise: new Float32Array(2 * 2 * 9), pointwise: new Float32Array(4 * 2 * 2) };
    const weights = new Float32Array(4 * 2 * 9);
    t.throws(() => b.dacPairEnergy(weights, shape, { ...pair, rank: 5 }), { code: 'ERANGE' }, `${b.name}: rank above min(n, kh*kw)`);
    t.throws(() => b.dacPairEnergy(weights, shape, { ...pair, depthwise: new Float32Array(35) }), { code: 'ESHAPE' }, `${b.name}: short depthwise`);
    t.throws(() => b.dacPairEnergy(weights, shape, { ...pair, pointwise: new Float64Array(16) as unknown as Float32Array }), { code: 'EINVAL' }, `${b.name}: float64 pointwise`);
    t.throws(() => b.dacPairEnergy(weights.subarray(1), shape, pair), { code: 'ESHAPE' }, `${b.name}: short weights`);
    t.throws(() => b.dacPairEnergy(weights, shape, pair, { tapScale: new Float64Array(3) }), { code: 'ESHAPE' }, `${b.name}: tapScale of kh values`);
    t.throws(() => b.dacPairEnergy(weights, shape, pair, { channelScale: new Float64Array(4) }), { code: 'ESHAPE' }, `${b.name}: channelScale of n values`);
    const raw = { weights, layout: 0 as const, ...shape, ...pair, tapScale: new Float64Array(9), channelScale: new Float64Array(2), threads: 1 };
    const out = { energy: new Float64Array(4), approxEnergy: new Float64Array(4), residual: new Float64Array(3) };
    t.throws(() => b.binding.dacPairEnergy({ ...raw, ...out }), /residual length 3/, `${b.name}: C++ checks lengths too`);
  }
});

t.test('cholesky: ridge, the blocked path, singular and indefinite inputs (every backend)', async (t) => {
  const r = rand(2);
  for (const b of availableBackends()) {
    for (const m of [1, 2, 7, 17, 64, 65, 130]) {
      // rank-deficient PSD (m/2 + 1 columns): the ridge makes it factor
      const X = randomMatrix(m, (m >> 1) + 1, r);
      const A = b.matmul(X, X, m, m, (m >> 1) + 1, { transB: true });
      const copy = Float64Array.from(A);
      const L = b.cholesky(A, m, 1e-6);
      t.same(A, copy, `${b.name} m=${m}: input untouched`);
      t.ok(maxAbsDiff(L, referenceCholesky(A, m, 1e-6)) < 1e-8, `${b.name} m=${m}: matches the reference`);
      let upper = 0;
      for (let i = 0; i < m; i++) for (let j = i + 1; j < m; j++) upper = Math.max(upper, Math.abs(L[i * m + j]));
      t.equal(upper, 0, `${b.name} m=${m}: upper triangle zero`);
      // L L^T = A + ridge * mean(diag) I
      let mean = 0;
      for (let i = 0; i < m; i++) mean += A[i * m + i] / m;
      const LLt = b.matmul(L, L, m, m, m, { transB: true });
      for (let i = 0; i < m; i++) LLt[i * m + i] -= 1e-6 * mean;
      t.ok(maxAbsDiff(LLt, A) < 1e-10 * Math.max(1, mean), `${b.name} m=${m}: L L^T reproduces the ridged matrix`);
    }
    // indefinite: the negative direction is dropped, the factor stays bounded
    const ind = Float64Array.from([1, 2, 0, 2, 1, 0, 0, 0, 3]);
    const Li = b.cholesky(ind, 3, 1e-3);
    t.ok(maxAbsDiff(Li, referenceCholesky(ind, 3, 1e-3)) < 1e-12, `${b.name}: indefinite input as documented`);
    t.ok(Li.every((v) => Number.isFinite(v) && Math.abs(v) < 10), `${b.name}: bounded factor`);
    t.equal(Li[2 * 3 + 1], 0, `${b.name}: the dropped column is zero below its pivot`);
    t.throws(() => b.cholesky(Float64Array.from([1, NaN, NaN, 1]), 2, 0), /non-finite/, `${b.name}: NaN is an error`);
  }
});

t.test('solveTriangular: forward and back substitution on a leading block (every backend)', async (t) => {
  const r = rand(3);
  for (const b of availableBackends()) {
    for (const [m, k, rows] of [
      [1, 1, 1],
      [9, 9, 4],
      [12, 5, 3],
      [80, 70, 6],
      [6, 0, 2],
      [5, 5, 0],
    ]) {
      const X = randomMatrix(m, m, r);
      const L = b.cholesky(b.matmul(X, X, m, m, m, { transB: true }), m, 1e-3);
      const B = randomMatrix(rows, k, r);
      const fwd = b.solveTriangular(L, m, B, rows, { k, transpose: true });
      const back = b.solveTriangular(L, m, B, rows, { k });
      let worst = 0;
      for (let row = 0; row < rows; row++) {
        for (let i = 0; i < k; i++) {
          // L_k z = b and L_k^T p = b
          let s = 0;
          let u = 0;
          for (let q = 0; q <= i; q++) s += L[i * m + q] * fwd[row * k + q];
          for (let q = i; q < k; q++) u += L[q * m + i] * back[row * k + q];
          worst = Math.max(worst, Math.abs(s - B[row * k + i]), Math.abs(u - B[row * k + i]));
        }
      }
      t.ok(worst < 1e-8, `${b.name} m=${m} k=${k} rows=${rows}: residual ${worst}`);
    }
  }
});

t.test('symmetricEigenvalues: descending, from the lower triangle, against known spectra (every backend)', async (t) => {
  const r = rand(4);
  for (const b of availableBackends()) {
    for (const m of [1, 2, 5, 17, 70]) {
      // Q diag(lambda) Q^T with Q from Gram-Schmidt of a random matrix
      const lambda = Array.from({ length: m }, (_, i) => (i % 3 === 0 ? -1 : 1) * (1 + i));
      const Q = randomMatrix(m, m, r);
      for (let i = 0; i < m; i++) {
        for (let k = 0; k < i; k++) {
          let d = 0;
          for (let q = 0; q < m; q++) d += Q[i * m + q] * Q[k * m + q];
          for (let q = 0; q < m; q++) Q[i * m + q] -= d * Q[k * m + q];
        }
        let norm = 0;
        for (let q = 0; q < m; q++) norm += Q[i * m + q] ** 2;
        for (let q = 0; q < m; q++) Q[i * m + q] /= Math.sqrt(norm);
      }
      const A = new Float64Array(m * m);
      for (let i = 0; i < m; i++)
        for (let j = 0; j < m; j++) for (let k = 0; k < m; k++) A[i * m + j] += Q[k * m + i] * lambda[k] * Q[k * m + j];
      // garbage above the diagonal is ignored
      for (let i = 0; i < m; i++) for (let j = i + 1; j < m; j++) A[i * m + j] = 1e6;
      const before = A.slice();
      const got = b.symmetricEigenvalues(A, m);
      const want = lambda.slice().sort((x, y) => y - x);
      t.ok(maxAbsDiff(got, want) < 1e-9 * m, `${b.name} m=${m}: ${Array.from(got.slice(0, 3))}`);
      t.same(A, before, `${b.name} m=${m}: the input is only read`);
      // The caller's scratch, reduced in place: the same values, bit for bit, alone and two at a time.
      t.same(b.symmetricEigenvalues(A.slice(), m, {}, { overwrite: true }), got, `${b.name} m=${m}: overwrite gives the same values`);
      const two = new Float64Array(2 * m * m);
      two.set(A);
      two.set(A, m * m);
      t.same(b.symmetricEigenvalues(two, m, {}, { count: 2, threads: 2, overwrite: true }).subarray(m), got, `${b.name} m=${m}: overwrite, batched`);
    }
    t.same(b.symmetricEigenvalues(new Float64Array(0), 0), new Float64Array(0), `${b.name}: empty`);
    t.throws(() => b.symmetricEigenvalues(Float64Array.from([1, 0, NaN, 1]), 2), /non-finite/, `${b.name}: NaN is an error`);
    t.throws(() => b.symmetricEigenvalues(new Float64Array(3), 2), /a has 3 values, expected 4/);
  }
});

t.test('linear algebra arguments are checked before C++', async (t) => {
  for (const b of availableBackends()) {
    const I = Float64Array.from([1, 0, 0, 1]);
    t.throws(() => b.matmul(new Float32Array(4) as unknown as Float64Array, I, 2, 2, 2), /a must be a Float64Array/);
    t.throws(() => b.matmul(I, I, 2, 2, 3), /a has 4 values, expected 6/);
    t.throws(() => b.matmul(I, I, 2, 2, 1.5), /k must be an integer/);
    t.throws(() => b.matmul(I, I, -1, 2, 2), /m must be in/);
    t.throws(() => b.matmul(I, I, 2, 2, 2, { threads: 0 }), /threads must be in/);
    t.throws(() => b.symmetricEigenvalues(I, 2, {}, { threads: 1.5 }), /threads must be an integer/);
    t.throws(() => b.cholesky(I, 2, -1), /ridge/);
    t.throws(() => b.cholesky(I, 2, NaN), /ridge/);
    t.throws(() => b.cholesky(I, 3, 0), /a has 4 values, expected 9/);
    t.throws(() => b.solveTriangular(Float64Array.from([1, 0, 0, 0]), 2, I, 2), /diagonal must be non-zero/);
    t.throws(() => b.solveTriangular(I, 2, I, 2, { k: 3 }), /k must be in 0\.\.2/);
    t.throws(() => b.solveTriangular(I, 2, new Float64Array(3), 2), /b has 3 values, expected 4/);
    t.throws(() => b.binding.gemm({ m: 2, n: 2, k: 2, a: I, transA: false, b: I, transB: false, c: new Float64Array(3), threads: 1 }), /c length 3/, `${b.name}: C++ checks lengths too`);
  }
});
