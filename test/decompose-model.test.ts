// The model-level decomposition outside the CLI: the report's weight error
// column (computed slice by slice) against the error of the whole
// reconstructed conv, for every method on odd shapes.
import t from 'tap';
import { replacementError } from '../src/decompose-model.js';
import { reconstructWeights, relativeError } from '../src/model/reconstruct.js';
import type { LayerReplacement } from '../src/model/types.js';
import { seededValues } from './fixtures/util.js';

const shapes = [
  { n: 1, c: 1, kh: 3, kw: 3 },
  { n: 5, c: 17, kh: 3, kw: 3 },
  { n: 16, c: 3, kh: 5, kw: 5 },
  { n: 7, c: 9, kh: 3, kw: 1 },
  { n: 4, c: 6, kh: 1, kw: 7 },
  { n: 13, c: 2, kh: 2, kw: 3 },
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
    }
    // Exact pairs (zero error) and all-zero weights are handled like relativeError does.
    const exactDac: LayerReplacement = { method: 'dac', name: 'x', rank: 1, depthwise: new Float32Array(c * K), pointwise: new Float32Array(n * c), bias: null };
    t.equal(replacementError(exactDac, { ...shape, weights: new Float32Array(n * c * K) }), 0, 'zero weights approximated exactly');
    t.equal(replacementError(exactDac, { ...shape, weights }), 1, 'a zero pair misses everything');
  }
});
