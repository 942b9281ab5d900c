// The model-level decomposition outside the CLI: the report's weight error
// column (computed slice by slice) against the error of the whole
// reconstructed conv, for every method on odd shapes.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decomposeLoaded, type DecomposeSettings } from '../src/decompose-model.js';
import { getBackend } from '../src/backend/loader.js';
import { availableBackends } from '../src/index.js';
import { loadModel } from '../src/formats/index.js';
import { loadTf } from '../src/runtime/index.js';
import { reconstructWeights, relativeError, replacementError } from '../src/model/reconstruct.js';
import type { LayerReplacement } from '../src/model/types.js';
import { biasFreeModel, saveModel } from './fixtures/tfjs-models.js';
import { seededValues, tempDir } from './fixtures/util.js';

const tmp = tempDir('decompose-model');

async function tfjsFixture(name: string, build: () => import('@tensorflow/tfjs').LayersModel): Promise<string> {
  await loadTf();
  const dir = path.join(tmp, name);
  if (!fs.existsSync(dir)) await saveModel(build(), dir);
  return dir;
}

const shapes = [
  { n: 1, c: 1, kh: 3, kw: 3 },
  { n: 5, c: 17, kh: 3, kw: 3 },
  { n: 16, c: 3, kh: 5, kw: 5 },
  { n: 7, c: 9, kh: 3, kw: 1 },
  { n: 4, c: 6, kh: 1, kw: 7 },
  { n: 13, c: 2, kh: 2, kw: 3 },
  // The backend's residual runs in blocks of 2^17 products: this one's spatial (510 x 480) and channel
  // (160 x 1530) products take two each.
  { n: 160, c: 170, kh: 3, kw: 3 },
];

t.test('replacementError is the relative error of the reconstructed conv, for every method', async (t) => {
  let seed = 1;
  for (const shape of shapes) {
    const { n, c, kh, kw } = shape;
    const K = kh * kw;
    const weights = seededValues(n * c * K, seed++);
    const width = Math.max(1, Math.min(n, c * kh) - 1);
    const r = Math.max(1, Math.min(n, K) - 1);
    const reps: LayerReplacement[] = [
      { method: 'dac', name: 'x', rank: r, depthwise: seededValues(c * r * K, seed++), pointwise: seededValues(n * c * r, seed++), bias: null },
      { method: 'spatial', name: 'x', width, vertical: seededValues(width * c * kh, seed++), horizontal: seededValues(n * width * kw, seed++), bias: null },
      { method: 'channel', name: 'x', width, first: seededValues(width * c * K, seed++), second: seededValues(n * width, seed++), bias: null },
    ];
    for (const rep of reps) {
      const want = relativeError(weights, reconstructWeights(rep, shape));
      const got = replacementError(rep, { ...shape, weights });
      t.ok(Math.abs(got - want) <= 1e-6 * want, `${rep.method} ${JSON.stringify(shape)}: ${got} vs ${want}`);
      // With a backend, spatial and channel pairs go through its GEMM, DAC pairs its dacPairEnergy (decomposeLoaded's path).
      if (availableBackends().length > 0) {
        const viaGemm = replacementError(rep, { ...shape, weights }, getBackend());
        t.ok(Math.abs(viaGemm - got) <= 1e-12 * got, `${rep.method} ${JSON.stringify(shape)} on the backend: ${viaGemm} vs ${got}`);
        // Threads split the output channels, whose sums are each their own: the very same number.
        t.equal(replacementError(rep, { ...shape, weights }, getBackend(), 3), viaGemm, `${rep.method} ${JSON.stringify(shape)}: 3 threads, same error`);
      }
    }
    // Exact pairs (zero error) and all-zero weights are handled like relativeError does.
    const exactDac: LayerReplacement = { method: 'dac', name: 'x', rank: 1, depthwise: new Float32Array(c * K), pointwise: new Float32Array(n * c), bias: null };
    t.equal(replacementError(exactDac, { ...shape, weights: new Float32Array(n * c * K) }), 0, 'zero weights approximated exactly');
    t.equal(replacementError(exactDac, { ...shape, weights }), 1, 'a zero pair misses everything');
    for (const b of availableBackends()) {
      t.equal(replacementError(exactDac, { ...shape, weights: new Float32Array(n * c * K) }, b), 0, `${b.name}: zero weights approximated exactly`);
      t.equal(replacementError(exactDac, { ...shape, weights }, b), 1, `${b.name}: a zero pair misses everything`);
    }
  }
});

t.test('bias-free convs + BatchNorm (depthwise after BN too): default options work for every policy', async (t) => {
  const dir = await tfjsFixture('bias-free', biasFreeModel);
  const m = await loadModel(dir);
  t.same(m.convs.map((c) => [c.name, c.bias === null]), [['b1', true], ['b2', true], ['b3_dw', true], ['b4', true], ['b5', true]]);
  const policies: DecomposeSettings[] = [
    { method: 'dac', rank: 2 },
    { method: 'spatial', rank: 2 },
    { method: 'channel', rank: 2 },
    { method: 'dac', flopsSaved: 0.3 },
    { method: 'auto', flopsSaved: 0.3 },
    { method: 'auto', paramsSaved: 0.2 },
    { method: 'dac', energy: 0.9 },
  ];
  for (const s of policies) {
    const label = JSON.stringify(s);
    const r = decomposeLoaded(m, s);
    t.equal(r.report.params.after, r.plan.params.after, `${label}: the plan counts the parameters written`);
    const added = r.report.layers.filter((l) => l.biasAdded).map((l) => l.name);
    const replaced = r.report.layers.filter((l) => l.method !== 'keep').map((l) => l.name);
    // Bias correction gives every replaced conv that reads a ReLU output a bias; b1 reads the image (mean 0).
    t.same(added, replaced.filter((n) => n !== 'b1'), `${label}: biases added where bias correction puts them`);
    t.ok(added.length > 0 || replaced.length === 0, `${label}: something was corrected`);
    const n = r.report.layers.reduce((a, l) => a + (l.biasAdded ? m.convs.find((c) => c.name === l.name)!.n : 0), 0);
    const noCorrection = decomposeLoaded(m, { ...s, biasCorrection: false });
    if (noCorrection.plan.layers.map((l) => l.method + l.rank).join() === r.plan.layers.map((l) => l.method + l.rank).join()) {
      t.equal(r.report.params.after - noCorrection.report.params.after, n, `${label}: exactly the added biases differ`);
    }
  }
});

t.test('a planner failure that is not a DacError is a bug (EINTERNAL naming the model), not bad input', async (t) => {
  const m = await loadModel(await tfjsFixture('bias-free', biasFreeModel));
  // Every call into this backend fails the way a bug would: an untyped TypeError.
  const broken = new Proxy(getBackend(), {
    get(b, key) {
      const v = Reflect.get(b, key);
      return typeof v === 'function'
        ? () => {
            throw new TypeError('boom');
          }
        : v;
    },
  });
  t.throws(() => decomposeLoaded(m, { method: 'dac', energy: 0.9 }, broken), { name: 'DacError', code: 'EINTERNAL', kind: 'internal', model: m.path, message: /internal error .*boom/ });
});
