// `dac bench` and planning by measured latency, on tiny fixtures: the
// structure and internal consistency of latency.json / .md / .svg (never the
// timings themselves), and that budget policies planned on a latency table
// never pick a replacement measured slower than the original.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { convCost, matchingWidth, replacementCost } from '../src/cost.js';
import { loadModel } from '../src/formats/index.js';
import { benchModel, planLatencies, readLatencyTable, stagesOf, variantsOf, type LatencyTable } from '../src/latency/index.js';
import { planModel } from '../src/plan/index.js';
import { main } from '../src/cli/main.js';
import { oneChannelModel, saveModel } from './fixtures/tfjs-models.js';
import { oddModel } from './fixtures/onnx-models.js';
import { tempDir } from './fixtures/util.js';

const dir = tempDir('latency');
const tfjsDir = path.join(dir, 'one-channel');
const onnxFile = path.join(dir, 'odd.onnx');

t.before(async () => {
  await tf.setBackend('cpu');
  await saveModel(oneChannelModel(), tfjsDir);
  fs.writeFileSync(onnxFile, oddModel());
});

function checkTable(t: Test, table: LatencyTable, convNames: string[]): void {
  t.same(table.layers.map((l) => l.name), convNames, 'one entry per conv, in order');
  for (const l of table.layers) {
    for (const r of table.runtimes) {
      const times = l.runtimes[r.id];
      if (!times) {
        t.fail(`${l.name}: no times for ${r.id}`);
        continue;
      }
      if (times.original === null) {
        t.ok(times.note, `${l.name} ${r.id}: says why it cannot run the conv`);
        continue;
      }
      t.ok(times.original > 0, `${l.name} ${r.id}: original time`);
      for (const v of times.variants) {
        const where = `${l.name} ${r.id} ${v.method} ${v.rank}`;
        t.equal(v.macsRatio, v.macs / l.macs, `${where}: MACs ratio`);
        if (v.ms === null) {
          t.ok(v.note, `${where}: says why it did not run`);
          continue;
        }
        t.ok(v.ms > 0 && v.originalMs! > 0, `${where}: times`);
        t.ok(Math.abs(v.timeRatio! - v.ms / v.originalMs!) < 1e-12, `${where}: time ratio`);
        if (v.macsRatio < 1) t.ok(Math.abs(v.realisedOverIdeal! - (1 - v.timeRatio!) / (1 - v.macsRatio)) < 1e-12, `${where}: realised/ideal`);
        else t.equal(v.realisedOverIdeal, null, `${where}: no ideal saving, no realised/ideal`);
      }
    }
  }
}

t.test('stages of each replacement chain up to the conv output', async (t) => {
  const model = await loadModel(onnxFile);
  for (const layer of model.convs.filter((c) => !c.skipReason)) {
    for (const v of [{ method: 'original' as const, rank: 0 }, ...variantsOf(layer, ['dac', 'spatial', 'channel'])]) {
      const stages = stagesOf(layer, v);
      let h = layer.inH;
      let w = layer.inW;
      let c = layer.c;
      let macs = 0;
      for (const s of stages) {
        t.same([s.inH, s.inW, s.c], [h, w, c], `${layer.name} ${v.method} ${v.rank}: stage input`);
        h = Math.floor((s.inH + s.pads[0] + s.pads[2] - (s.dilations[0] * (s.kh - 1) + 1)) / s.strides[0]) + 1;
        w = Math.floor((s.inW + s.pads[1] + s.pads[3] - (s.dilations[1] * (s.kw - 1) + 1)) / s.strides[1]) + 1;
        c = s.n;
        macs += h * w * s.n * (s.c / s.groups) * s.kh * s.kw;
      }
      t.same([h, w, c], [layer.outH, layer.outW, layer.n], `${layer.name} ${v.method} ${v.rank}: output`);
      const want = v.method === 'original' ? convCost(layer).macs : replacementCost(layer, v.method, v.rank).macs;
      t.equal(macs, want, `${layer.name} ${v.method} ${v.rank}: MACs as cost.ts counts them`);
    }
  }
});

t.test('benchModel: every conv, every rank, every runtime; consistent ratios; whole model', async (t) => {
  const model = await loadModel(tfjsDir);
  const lines: string[] = [];
  const table = await benchModel(model, { reps: 1, progress: (l) => lines.push(l) });
  t.same(table.runtimes.map((r) => r.id), ['ours', 'ort', 'tfjs'], 'all three runtimes are installed here');
  checkTable(t, table, model.convs.map((c) => c.name));
  for (const l of table.layers) {
    const conv = model.convs.find((c) => c.name === l.name)!;
    const dac = l.runtimes.ours!.variants.filter((v) => v.method === 'dac');
    t.same(dac.map((v) => v.rank), Array.from({ length: Math.min(conv.n, 9) }, (_, i) => i + 1), `${l.name}: DAC at every rank`);
    for (const m of ['spatial', 'channel'] as const) {
      const widths = [...new Set(dac.map((v) => matchingWidth(conv, m, v.rank)))];
      t.same(l.runtimes.ours!.variants.filter((v) => v.method === m).map((v) => v.rank), widths, `${l.name}: ${m} at the matching widths`);
    }
    for (const v of l.runtimes.ort!.variants) t.equal(v.macs, replacementCost(conv, v.method, v.rank).macs, `${l.name}: MACs of ${v.method} ${v.rank}`);
    t.equal(l.macs, convCost(conv).macs);
  }
  t.same(
    table.whole.filter((w) => w.ms !== null).map((w) => [w.runtime, w.variant]),
    [
      ['tfjs', 'original'],
      ['tfjs', 'decomposed'],
      ['tfjs', 'decomposed (DacConv2D)'],
    ],
    'a TF.js model runs whole in tfjs: original, stock and DacConv2D',
  );
  t.ok(table.plan && table.plan.layers.length === model.convs.length, 'the timed plan is recorded');
  const after = table.whole.find((w) => w.variant === 'decomposed')!.macs;
  t.ok(after <= 0.5 * table.whole.find((w) => w.variant === 'original')!.macs + 1, 'the default plan saves half the MACs');
  t.ok(lines.some((l) => /\[2\/2\] k2/.test(l)), 'progress names the layers');
  t.ok(table.machine.cores >= 1 && table.machine.loadStart.length === 3, 'machine and load recorded');
});

t.test('a TF.js graph model runs whole in tfjs: original, stock and DacConv2D op nodes', async (t) => {
  const { fusedGraph } = await import('./fixtures/graph-models.js');
  const model = await loadModel(fusedGraph(path.join(dir, 'graph')));
  const table = await benchModel(model, { reps: 1, runtimes: ['tfjs'], methods: ['dac'], layers: ['c1'], plan: { method: 'dac', rank: 2 } });
  t.same(
    table.whole.filter((w) => w.ms !== null).map((w) => w.variant),
    ['original', 'decomposed', 'decomposed (DacConv2D)'],
    'all three variants ran',
  );
});

t.test('dac bench on an ONNX model (dilation, asymmetric pads, a depthwise conv): files and whole model in ort', async (t) => {
  const out = path.join(dir, 'bench-onnx');
  const stdout: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => (stdout.push(String(s)), true)) as typeof process.stdout.write;
  let code: number;
  try {
    code = await main(['bench', onnxFile, '--reps', '1', '--runtime', 'ours,ort', '--methods', 'dac,channel', '--rank', '2', '--out', out, '--json']);
  } finally {
    process.stdout.write = write;
  }
  t.equal(code, 0);
  const file = path.join(out, 'latency.json');
  const table = readLatencyTable(file);
  t.same(JSON.parse(stdout.join('')), table, '--json prints latency.json');
  const model = await loadModel(onnxFile);
  checkTable(t, table, model.convs.map((c) => c.name));
  const depthwise = table.layers.find((l) => l.groups > 1)!;
  t.equal(depthwise.runtimes.ours!.original, null, 'ours cannot run a grouped conv and says so');
  t.ok(depthwise.runtimes.ort!.original! > 0, 'ort times the grouped conv');
  t.ok(table.layers.every((l) => l.runtimes.ours!.variants.every((v) => v.method !== 'spatial')), '--methods is obeyed');
  t.same(table.plan!.policy, { method: 'dac', rank: 2 }, 'the policy flags give the timed plan');
  const ort = table.whole.filter((w) => w.runtime === 'ort');
  t.same(ort.map((w) => w.variant), ['original', 'decomposed']);
  t.ok(ort.every((w) => w.ms! > 0));
  const md = fs.readFileSync(path.join(out, 'latency.md'), 'utf8');
  for (const l of table.layers) t.match(md, `## ${l.name}:`, `latency.md has ${l.name}`);
  t.match(md, /\| onnxruntime-node [^|]*\| decomposed \|/);
  const svg = fs.readFileSync(path.join(out, 'latency.svg'), 'utf8');
  t.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.match(svg, /<\/svg>\n$/);
  const panels = table.layers.filter((l) => l.runtimes.ours!.variants.some((v) => v.method === 'dac')).length;
  t.equal((svg.match(/stroke-dasharray="4 3" points=/g) ?? []).length, panels, 'one MACs-ratio line per decomposable layer');
  t.equal(await main(['bench', onnxFile, '--runtime', 'gpu', '--out', out]), 2, 'unknown runtime is a usage error');
});

/** A table whose times are set by `ms(layer, method, rank)` (original: rank 0). */
function syntheticTable(base: LatencyTable, ms: (layer: string, method: string, rank: number) => number): LatencyTable {
  const copy = JSON.parse(JSON.stringify(base)) as LatencyTable;
  for (const l of copy.layers) {
    const times = l.runtimes.ours!;
    times.original = ms(l.name, 'original', 0);
    for (const v of times.variants) {
      v.ms = ms(l.name, v.method, v.rank);
      v.originalMs = times.original;
    }
  }
  return copy;
}

t.test('planning by latency: --latency-saved meets the measured budget; no budget policy picks a slower replacement', async (t) => {
  const model = await loadModel(onnxFile);
  const base = await benchModel(model, { reps: 1, runtimes: ['ours'], plan: null });
  const decomposable = model.convs.filter((c) => !c.skipReason && c.groups === 1);
  const slow = decomposable[1].name;
  // Original 10 ms per layer; replacements cost their MACs share, except every one of `slow`, which is slower.
  const table = syntheticTable(base, (name, method, rank) => {
    if (method === 'original') return 10;
    const conv = model.convs.find((c) => c.name === name)!;
    const ratio = replacementCost(conv, method as 'dac', rank).macs / convCost(conv).macs;
    return name === slow ? 10 * (1.5 + ratio) : 10 * ratio;
  });
  const latency = planLatencies(table, 'ours', model.convs, 'synthetic');
  const total = Object.values(latency).reduce((a, l) => a + l.original, 0);
  for (const method of ['dac', 'auto'] as const) {
    const plan = planModel(model.convs, model.other, { method, latencySaved: 0.3, latency });
    let after = 0;
    for (const lp of plan.layers) {
      const lat = latency[lp.name];
      if (!lat) continue;
      after += lp.method === 'keep' ? lat.original : lat.options.find((o) => o.method === lp.method && o.rank === lp.rank)!.ms;
    }
    t.ok(after <= 0.7 * total + 1e-9, `${method}: measured conv time ${after.toFixed(2)} <= 70% of ${total}`);
    t.equal(plan.layers.find((l) => l.name === slow)!.method, 'keep', `${method}: the slower layer is kept`);
    const flops = planModel(model.convs, model.other, { method, flopsSaved: 0.2, latency });
    t.equal(flops.layers.find((l) => l.name === slow)!.method, 'keep', `${method}: --flops-saved with a table keeps it too`);
  }
  const without = planModel(model.convs, model.other, { method: 'dac', flopsSaved: 0.2 });
  t.not(without.layers.find((l) => l.name === slow)!.method, 'keep', 'without the table the planner would decompose it (the check above can fail)');
  t.throws(() => planModel(model.convs, model.other, { method: 'dac', latencySaved: 0.95, latency }), /measured conv time/, 'an impossible latency budget says so');
  t.throws(() => planModel(model.convs, model.other, { method: 'dac', latencySaved: 0.3 }), /latencySaved needs measured latencies/);

  const file = path.join(dir, 'synthetic.json');
  fs.writeFileSync(file, JSON.stringify(table));
  const out = path.join(dir, 'latency-planned.onnx');
  t.equal(await main(['decompose', onnxFile, '-o', out, '--latency-saved', '0.3', '--latency-table', file, '--runtime', 'ours', '-q']), 0);
  const report = JSON.parse(fs.readFileSync(path.join(dir, 'latency-planned.report.json'), 'utf8')) as { layers: { name: string; method: string }[] };
  t.equal(report.layers.find((l) => l.name === slow)!.method, 'keep', 'decompose --latency-saved keeps the slower layer');
  t.equal(await main(['inspect', onnxFile, '--latency-saved', '0.3', '--latency-table', file, '--runtime', 'tfjs', '--json']), 1, 'a runtime the table lacks is an error');
  t.equal(await main(['inspect', onnxFile, '--latency-saved', '0.3', '--flops-saved', '0.3']), 2, 'two budgets are a usage error');

  const tfjsModel = await loadModel(tfjsDir);
  t.throws(() => planLatencies(table, 'ours', tfjsModel.convs, file), /measured on another model/, 'a table of another model is refused');
  fs.writeFileSync(path.join(dir, 'bad.json'), JSON.stringify({ version: 99, layers: [] }));
  t.throws(() => readLatencyTable(path.join(dir, 'bad.json')), /not a latency.json/);
});

t.test('--latency-saved without a table measures the model first, in the runtime asked for', async (t) => {
  const err: string[] = [];
  const out: string[] = [];
  const writeErr = process.stderr.write.bind(process.stderr);
  const writeOut = process.stdout.write.bind(process.stdout);
  process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
  process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
  let code: number;
  try {
    code = await main(['inspect', tfjsDir, '--method', 'auto', '--latency-saved', '0.01', '--runtime', 'ours', '--json']);
  } finally {
    process.stderr.write = writeErr;
    process.stdout.write = writeOut;
  }
  t.match(err.join(''), /measuring the convs in ours first/);
  t.match(err.join(''), /\[2\/2\] k2 .* in dac-conv/, 'progress on stderr');
  // Whether 1% can be saved depends on this machine's timings: either a plan, or the reason there is none.
  if (code === 0) t.ok(JSON.parse(out.join('')).plan, 'a plan');
  else t.match(err.join(''), /cannot save 1.0% of the model's measured conv time/);
});
