// Published TF.js Layers models from npm packages (fetched once into the
// ignored cache): the UpscalerJS ESRGAN super-resolution models (fully
// convolutional, input [null, null, null, 3], UpSampling2D tails) and the
// Keras InceptionV3 and MobileNetV2 that nsfwjs ships (bias-free convs +
// BatchNorm, depthwise convs after BatchNorm, uint8-quantized weights; the
// package stores model.json and shards as UMD modules, unpacked here). For
// each: every KxK group-1 conv is replaced at full rank or has a per-layer
// reason; at full rank (default options otherwise) the output equals the
// original's in stock tf.loadLayersModel on seeded inputs (free-size models at
// two sizes); a --flops-saved 0.3 model is written and runs there, or the
// planner states the most DAC can save.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decomposeLoaded } from '../src/decompose-model.js';
import { loadModel } from '../src/formats/index.js';
import { NOMINAL_FREE_SIZE } from '../src/formats/model.js';
import { loadTf } from '../src/runtime/index.js';
import { relErr, seededValues } from '../test/fixtures/util.js';
import { CACHE_DIR, findFiles, npmPackage } from './cache.js';

const OUT = path.join(CACHE_DIR, 'tfjs-layers-out');

/** Runs a Layers model.json in stock TF.js, from the files as they are (not through this package's reader). */
async function stockOutputs(json: string, x: Float32Array, shape: number[]): Promise<Float32Array> {
  const { tf } = await loadTf();
  const dir = path.dirname(json);
  const j = JSON.parse(fs.readFileSync(json, 'utf8'));
  const data = Buffer.concat(j.weightsManifest.flatMap((g: { paths: string[] }) => g.paths.map((p) => fs.readFileSync(path.join(dir, p)))));
  const net = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: j.modelTopology,
      weightSpecs: j.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights),
      weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.length),
    }),
  );
  const input = tf.tensor(x, shape);
  const y = net.predict(input) as import('@tensorflow/tfjs').Tensor;
  const out = Float32Array.from(await y.data());
  tf.dispose([input, y]);
  net.dispose();
  return out;
}

/** nsfwjs keeps model.json and each shard (base64) in a UMD module: written out as a plain model folder. */
function unpackUmd(dir: string, dest: string): string {
  const json = path.join(dest, 'model.json');
  if (fs.existsSync(json)) return json;
  const load = (f: string) => {
    const m = require(f);
    return m.default ?? m;
  };
  const model = load(path.join(dir, 'model.min.js'));
  fs.mkdirSync(dest, { recursive: true });
  for (const group of model.weightsManifest) {
    for (const p of group.paths as string[]) {
      fs.writeFileSync(path.join(dest, p), Buffer.from(load(path.join(dir, `${p.replace(/\.bin$/, '')}.min.js`)) as string, 'base64'));
    }
  }
  fs.writeFileSync(json, JSON.stringify({ format: 'layers-model', ...model }));
  return json;
}

interface Case {
  name: string;
  file: string;
}

const cases: Case[] = [];
const skipped: string[] = [];
for (const spec of ['@upscalerjs/default-model@1.0.0', '@upscalerjs/esrgan-slim@1.0.0', '@upscalerjs/esrgan-medium@1.0.0']) {
  const root = npmPackage(spec);
  if (!root) skipped.push(spec);
  // x2 and x4 of the multi-scale packages: x3 and x8 are the same blocks again.
  else for (const f of findFiles(path.join(root, 'models'), /^model\.json$/)) if (!/x[38]/.test(f)) cases.push({ name: `${spec.split('@')[1]} ${path.relative(path.join(root, 'models'), path.dirname(f)) || '.'}`, file: f });
}
const nsfw = npmPackage('nsfwjs@4.4.0');
if (!nsfw) skipped.push('nsfwjs@4.4.0');
else for (const m of ['mobilenet_v2', 'inception_v3']) cases.push({ name: `nsfwjs ${m}`, file: unpackUmd(path.join(nsfw, 'dist', 'models', m), path.join(CACHE_DIR, 'nsfwjs-layers', m)) });

for (const s of skipped) t.skip(`${s}: not in the cache and the registry cannot be reached`);
fs.rmSync(OUT, { recursive: true, force: true });
const results: string[] = [];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const m = await loadModel(c.file);
    const sizes = m.freeInput ? [[20, 28], [33, 17]] : [[m.inputShape[0], m.inputShape[1]]];
    const ch = m.inputShape[2];
    const inputs = sizes.map(([h, w], k) => ({ shape: [1, h, w, ch], x: seededValues(h * w * ch, 101 + k) }));
    const y0: Float32Array[] = [];
    for (const i of inputs) y0.push(await stockOutputs(c.file, i.x, i.shape));

    // Full rank, default options: every KxK group-1 conv replaced, or a reason for it.
    const kxk = m.convs.filter((l) => l.kh * l.kw > 1 && l.groups === 1);
    const ranks = Object.fromEntries(kxk.filter((l) => !l.skipReason).map((l) => [l.name, Math.min(l.n, l.kh * l.kw)]));
    const full = decomposeLoaded(m, { method: 'dac', ranks });
    t.equal(full.report.freeInput, m.freeInput, 'the report says whether the input size is free');
    if (m.freeInput) t.same(full.report.inputShape.slice(0, 2), [NOMINAL_FREE_SIZE, NOMINAL_FREE_SIZE], 'costed per pixel at the nominal size');
    const byName = new Map(full.report.layers.map((l) => [l.name, l]));
    const unexplained = kxk.filter((l) => byName.get(l.name)!.method === 'keep' && !byName.get(l.name)!.reason);
    t.same(unexplained.map((l) => l.name), [], `every KxK group-1 conv replaced or explained (${Object.keys(ranks).length} of ${kxk.length} replaced)`);
    const fullDir = path.join(OUT, `${c.name.replace(/\W+/g, '-')}-full`);
    await full.model.save(fullDir);
    let worst = 0;
    for (const [k, i] of inputs.entries()) {
      const y = await stockOutputs(path.join(fullDir, 'model.json'), i.x, i.shape);
      worst = Math.max(worst, relErr(y0[k], y));
    }
    // What `dac decompose` checks before it keeps an output: our own loader reads it back (a free size's
    // nominal 1024 makes a 4x upscaler's widened last stage 4096 x 4096 x c*r: past 2^31 elements).
    const back = await loadModel(path.join(fullDir, 'model.json'));
    t.ok(back.convs.length > 0, 'the written model loads back');
    t.ok(worst < 1e-4, `full rank equals the original in stock TF.js at ${sizes.map((s) => s.join('x')).join(' and ')} (worst rel err ${worst.toExponential(2)})`);

    // 30% of the MACs with default options (DAC), or the planner's stated cap.
    let budget: string;
    try {
      const r = decomposeLoaded(m, { method: 'dac', flopsSaved: 0.3 });
      const dir = path.join(OUT, `${c.name.replace(/\W+/g, '-')}-30`);
      await r.model.save(dir);
      const errs: string[] = [];
      for (const [k, i] of inputs.entries()) {
        const y = await stockOutputs(path.join(dir, 'model.json'), i.x, i.shape);
        t.ok(y.length === y0[k].length && y.every(Number.isFinite), `the 30% model loads and runs at ${i.shape.slice(1, 3).join('x')}`);
        errs.push(relErr(y0[k], y).toExponential(1));
      }
      const saved = 1 - r.report.flops.after / r.report.flops.before;
      t.ok(saved >= 0.3, `saves ${(saved * 100).toFixed(1)}%`);
      budget = `30%: ${r.report.layers.filter((l) => l.method !== 'keep').length} convs replaced, output rel err ${errs.join('/')}`;
    } catch (err) {
      const msg = (err as Error).message;
      t.match(msg, /cannot save 30\.0% of the model's MACs with method dac: at most [\d.]+%/, `or the cap is stated: ${msg}`);
      budget = `30% refused: ${/at most [\d.]+%/.exec(msg)?.[0]}`;
    }
    results.push(
      `${c.name}: input ${m.freeInput ? `free x free x ${ch}` : m.inputShape.join('x')}, weights ${m.weightDtype}, ${Object.keys(ranks).length}/${kxk.length} KxK convs replaced at full rank (rel err ${worst.toExponential(1)}), ${budget}`,
    );
  });
}
t.teardown(() => {
  for (const r of results) process.stderr.write(`tfjs-layers: ${r}\n`);
});
