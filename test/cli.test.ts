// The `dac` CLI run as a child process: help for every flag, inspect,
// decompose (report.json, exact full rank, both formats), compare, demo, and
// bad input: one clear line, a non-zero exit, no partial output, input unchanged.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compareHelp, compareOptions } from '../src/cli/compare.js';
import { decomposeHelp, decomposeOptions } from '../src/cli/decompose.js';
import { demoHelp, demoOptions } from '../src/cli/demo.js';
import { inspectHelp, inspectOptions } from '../src/cli/inspect.js';
import type { Options } from '../src/cli/common.js';
import { encodeIdx, normalizeImages, readIdxImages, readIdxLabels } from '../src/data/idx.js';
import { loadModel } from '../src/formats/index.js';
import { decodeModel, encodeModel } from '../src/formats/onnx/schema.js';
import { demoImages, demoLabels, demoModel, hashTree, root, seededValues, tempDir, vggOnnx } from './fixtures/util.js';
import { randomSpec, writeTfjsNet } from '../bench/synthetic.js';

const tmp = tempDir('cli');

function dac(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), ...args], {
    cwd: root,
    encoding: 'utf8',
    env: process.env,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The same as dac(), without blocking, so independent runs can overlap. */
function dacAsync(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), ...args], { cwd: root, env: process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** The first `count` embedded test images as a small IDX file, to keep runs short. */
function smallImages(count: number): string {
  const file = path.join(tmp, `images-${count}.gz`);
  if (!fs.existsSync(file)) fs.writeFileSync(file, encodeIdx([count, 28, 28], readIdxImages(demoImages).pixels.subarray(0, count * 784)));
  return file;
}

function smallLabels(count: number): string {
  const file = path.join(tmp, `labels-${count}.gz`);
  if (!fs.existsSync(file)) fs.writeFileSync(file, encodeIdx([count], readIdxLabels(demoLabels).subarray(0, count)));
  return file;
}

t.test('help documents every flag of every command', async (t) => {
  const cases: [string, Options, string][] = [
    ['inspect', inspectOptions, inspectHelp],
    ['decompose', decomposeOptions, decomposeHelp],
    ['compare', compareOptions, compareHelp],
    ['demo', demoOptions, demoHelp],
  ];
  for (const [cmd, options, help] of cases) {
    for (const [flag, spec] of Object.entries(options)) {
      t.ok(help.includes(`--${flag}`), `${cmd} --help mentions --${flag}`);
      if (spec.short) t.ok(help.includes(`-${spec.short},`), `${cmd} --help mentions -${spec.short}`);
    }
  }
  const main = dac('--help');
  t.equal(main.status, 0);
  for (const cmd of ['inspect', 'decompose', 'compare', 'demo']) t.ok(main.stdout.includes(cmd), `dac --help lists ${cmd}`);
  const sub = dac('decompose', '--help');
  t.equal(sub.status, 0);
  t.equal(sub.stdout, decomposeHelp);
  t.equal(dac().status, 2, 'no command is a usage error');
  const unknown = dac('frobnicate');
  t.equal(unknown.status, 2);
  t.match(unknown.stderr, /unknown command 'frobnicate'/);
});

t.test('inspect: table and JSON, both formats', async (t) => {
  const text = dac('inspect', demoModel);
  t.equal(text.status, 0, text.stderr);
  t.match(text.stdout, /conv2d_13/);
  t.match(text.stdout, /total: 16,444,928 MACs/);
  const json = dac('inspect', vggOnnx, '--json');
  t.equal(json.status, 0, json.stderr);
  const ins = JSON.parse(json.stdout);
  t.equal(ins.convs.length, 13);
  t.equal(ins.totals.macs, 16444928);
  t.equal(ins.totals.params, 923898);
  for (const c of ins.convs) {
    t.equal(c.energy.length, 9);
    t.ok(c.energy.every((e: number, i: number) => e > 0 && e <= 1 + 1e-9 && (i === 0 || e >= c.energy[i - 1] - 1e-9)), `${c.name}: energy rises to 1`);
    t.ok(Math.abs(c.energy[8] - 1) < 1e-6);
    t.equal(c.canSaveFlops, true);
  }
  t.same(ins.convs[0].outputSize, [28, 28]);
  t.equal(ins.convs[0].macs, 112896);
});

t.test('decompose --rank 9 (TF.js): exact model, report.json with exact MACs, warnings', async (t) => {
  const out = path.join(tmp, 'vgg-r9');
  const hash = hashTree(demoModel);
  const r = dac('decompose', demoModel, '-o', out, '--rank', '9');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /warning: layer conv2d_1: dac rank 9 does not save MACs/);
  t.equal(hashTree(demoModel), hash, 'input unchanged');
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
  t.equal(report.method, 'dac');
  t.equal(report.layers.length, 13);
  const model = await loadModel(demoModel);
  let after = model.other.macs;
  for (const [i, c] of model.convs.entries()) {
    const l = report.layers[i];
    t.equal(l.name, c.name);
    t.equal(l.rank, 9);
    t.equal(l.macsBefore, c.outH * c.outW * c.n * c.c * 9);
    t.equal(l.macsAfter, c.outH * c.outW * (c.c * 9 * 9 + c.c * 9 * c.n), `${c.name}: MACs after from the real output size`);
    t.ok(l.relError < 1e-5, `${c.name}: relError ${l.relError}`);
    after += l.macsAfter;
  }
  t.equal(report.flops.before, 16444928);
  t.equal(report.flops.after, after);
  t.equal(report.params.before, 923898);
  const cmp = dac('compare', demoModel, out, '--inputs', '4', '--input', smallImages(16), '--json');
  t.equal(cmp.status, 0, cmp.stderr);
  const res = JSON.parse(cmp.stdout).results;
  t.equal(res.length, 2);
  for (const c of res) {
    t.ok(c.relError < 1e-4, `${c.set}: relative error ${c.relError}`);
    t.equal(c.top1Agreement, 1);
  }
});

t.test('decompose ONNX with a FLOPs budget; <name>.report.json beside the file; output loads', async (t) => {
  const dir = path.join(tmp, 'onnx-out');
  fs.mkdirSync(dir, { recursive: true });
  const out = path.join(dir, 'vgg-channel.onnx');
  const r = dac('decompose', vggOnnx, '-o', out, '--method', 'channel', '--flops-saved', '0.4', '--skip-first');
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /MACs\s+16,444,928 -> /);
  const report = JSON.parse(fs.readFileSync(path.join(dir, 'vgg-channel.report.json'), 'utf8'));
  t.ok(report.flops.after <= 0.6 * report.flops.before, `saved ${1 - report.flops.after / report.flops.before}`);
  t.equal(report.layers[0].method, 'keep', '--skip-first keeps the first conv');
  t.ok(report.layers.some((l: { method: string }) => l.method === 'channel'));
  const m = await loadModel(out);
  let macs = m.other.macs;
  for (const c of m.convs) macs += c.outH * c.outW * c.n * c.c * c.kh * c.kw;
  t.equal(macs, report.flops.after, 'report MACs equal the MACs of the written model');
  const cmp = dac('compare', vggOnnx, out, '--inputs', '0', '--input', smallImages(50), '--labels', smallLabels(50), '--json');
  t.equal(cmp.status, 0, cmp.stderr);
  const res = JSON.parse(cmp.stdout).results[0];
  t.equal(res.count, 50);
  t.ok(res.accuracy.a > 0.85, `original accuracy ${res.accuracy.a}`);
  t.type(res.accuracy.b, 'number');
});

t.test('decompose --layers / --ranks select layers; spatial on TF.js', async (t) => {
  const out = path.join(tmp, 'vgg-ranks');
  const r = dac('decompose', demoModel, '-o', out, '--method', 'spatial', '--ranks', 'conv2d_5=40,conv2d_9=100', '-q');
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, '', '--quiet prints nothing');
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
  const changed = report.layers.filter((l: { method: string }) => l.method !== 'keep');
  t.same(changed.map((l: { name: string; rank: number }) => [l.name, l.rank]), [['conv2d_5', 40], ['conv2d_9', 100]]);
  const out2 = path.join(tmp, 'vgg-layers');
  const r2 = dac('decompose', demoModel, '-o', out2, '--rank', '4', '--layers', 'conv2d_2,conv2d_3', '--fold-bn');
  t.equal(r2.status, 0, r2.stderr);
  const report2 = JSON.parse(fs.readFileSync(path.join(out2, 'report.json'), 'utf8'));
  t.equal(report2.foldedBatchNorm, true);
  t.same(report2.layers.filter((l: { method: string }) => l.method === 'dac').map((l: { name: string }) => l.name), ['conv2d_2', 'conv2d_3']);
  const json = fs.readFileSync(path.join(out2, 'model.json'), 'utf8');
  t.notOk(json.includes('BatchNormalization'), '--fold-bn removed the BatchNorm layers');
});

t.test('compare on a raw float32 input file', async (t) => {
  const file = path.join(tmp, 'inputs.f32');
  fs.writeFileSync(file, Buffer.from(seededValues(3 * 28 * 28, 5).buffer));
  const r = dac('compare', demoModel, vggOnnx, '--inputs', '2', '--input', file);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /random \(seed 1\) \(2 inputs\): max abs diff [0-9.e-]+, relative error [0-9.e-]+, top-1 agreement 100.00%/);
  t.match(r.stdout, /inputs.f32 \(3 inputs\)/);
  const bad = path.join(tmp, 'inputs-bad.f32');
  fs.writeFileSync(bad, Buffer.alloc(100));
  const r2 = dac('compare', demoModel, vggOnnx, '--input', bad);
  t.equal(r2.status, 1);
  t.match(r2.stderr, /not a multiple of one float32 image/);
});

t.test('bad input: one clear line, non-zero exit, no partial output, input unchanged', async (t) => {
  const tfjsCopy = (name: string, edit: (dir: string) => void) => {
    const dir = path.join(tmp, `in-${name}`);
    fs.cpSync(demoModel, dir, { recursive: true });
    edit(dir);
    return dir;
  };
  const jsonPath = (d: string) => path.join(d, 'model.json');
  const shardPath = (d: string) => path.join(d, 'group1-shard1of1.bin');
  const editJson = (d: string, fn: (j: Record<string, unknown> & { weightsManifest: { paths: string[] }[] }) => void) => {
    const j = JSON.parse(fs.readFileSync(jsonPath(d), 'utf8'));
    fn(j);
    fs.writeFileSync(jsonPath(d), JSON.stringify(j));
  };
  const onnxCopy = (name: string, bytes: Uint8Array) => {
    const f = path.join(tmp, `in-${name}.onnx`);
    fs.writeFileSync(f, bytes);
    return f;
  };
  const onnxBytes = fs.readFileSync(vggOnnx);
  const onnxWithInf = () => {
    const m = decodeModel(onnxBytes);
    const w = m.graph!.initializer.find((i) => i.name === 'layers.3.weight')!;
    const raw = Buffer.from(w.raw_data!);
    raw.writeFloatLE(Infinity, 20);
    w.raw_data = raw;
    return encodeModel(m);
  };
  const cases: { name: string; input: string; args?: string[]; out?: string; code: number; message: RegExp }[] = [
    {
      name: 'truncated model.json',
      input: tfjsCopy('trunc', (d) => fs.writeFileSync(jsonPath(d), fs.readFileSync(jsonPath(d)).subarray(0, 2000))),
      code: 1,
      message: /model.json is not valid JSON \(truncated\?\)/,
    },
    { name: 'invalid model.json', input: tfjsCopy('invalid', (d) => fs.writeFileSync(jsonPath(d), '{"modelTopology": 7}')), code: 1, message: /modelTopology has no class_name|no modelTopology/ },
    { name: 'truncated .onnx', input: onnxCopy('trunc', onnxBytes.subarray(0, 100000)), code: 1, message: /cannot parse ONNX protobuf|has \d+ bytes of raw_data/ },
    { name: 'not an .onnx', input: onnxCopy('text', Buffer.from('hello world, not protobuf')), code: 1, message: /cannot parse ONNX|not an ONNX model/ },
    {
      name: 'short shard',
      input: tfjsCopy('short', (d) => fs.writeFileSync(shardPath(d), fs.readFileSync(shardPath(d)).subarray(0, 1000))),
      code: 1,
      message: /hold 1000 bytes, the manifest needs 3704040 \(truncated shard\?\)/,
    },
    {
      name: 'manifest path escaping the folder',
      input: tfjsCopy('escape', (d) => editJson(d, (j) => (j.weightsManifest[0].paths = ['../../../etc/shadow']))),
      code: 1,
      message: /shard path \.\.\/\.\.\/\.\.\/etc\/shadow escapes the model folder/,
    },
    {
      name: 'NaN weights',
      input: tfjsCopy('nan', (d) => {
        const b = fs.readFileSync(shardPath(d));
        b.writeFloatLE(NaN, 40);
        fs.writeFileSync(shardPath(d), b);
      }),
      code: 1,
      message: /layer conv2d_1, field conv2d_1\/kernel: value \[10\] is NaN/,
    },
    { name: 'Inf weights (ONNX)', input: onnxCopy('inf', onnxWithInf()), code: 1, message: /field layers.3.weight: value \[5\] is Infinity/ },
    { name: 'rank 0', input: demoModel, args: ['--rank', '0'], code: 2, message: /--rank must be at least 1, got 0/ },
    { name: 'rank above max', input: demoModel, args: ['--rank', '10'], code: 1, message: /rank 10 is out of range 1\.\.9/ },
    { name: 'output equal to input (TF.js)', input: demoModel, out: demoModel, code: 1, message: /field output: .* contains the input .*; refusing to replace it/ },
    { name: 'output is the input model.json', input: demoModel, out: path.join(demoModel, 'model.json'), code: 1, message: /is a folder; got .*model.json/ },
    { name: 'output equal to input (ONNX)', input: vggOnnx, out: vggOnnx, code: 1, message: /field output: .* is the input .*; refusing to write over an input/ },
    { name: 'ONNX output without .onnx', input: vggOnnx, out: path.join(tmp, 'noext', 'out-no-ext'), code: 1, message: /must be a \.onnx file path/ },
    { name: 'missing model', input: path.join(tmp, 'nope'), code: 1, message: /model .*nope: no such file or folder/ },
    { name: 'two policies', input: demoModel, args: ['--rank', '3', '--energy', '0.9'], code: 2, message: /give only one policy/ },
    { name: 'unknown flag', input: demoModel, args: ['--rank', '3', '--bogus'], code: 2, message: /Unknown option '--bogus'/ },
    { name: 'unknown layer', input: demoModel, args: ['--rank', '3', '--layers', 'conv2d_99'], code: 1, message: /no conv named 'conv2d_99'/ },
    { name: 'bad method', input: demoModel, args: ['--method', 'svd', '--rank', '3'], code: 2, message: /--method must be dac, spatial, channel or auto/ },
    { name: 'impossible budget', input: demoModel, args: ['--flops-saved', '0.99'], code: 1, message: /cannot save 99.0% of the model's MACs/ },
  ];
  const check = async (c: (typeof cases)[number], i: number) => {
    const out = c.out ?? path.join(tmp, `case-${i}`, `out${c.input.endsWith('.onnx') ? '.onnx' : ''}`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const before = fs.existsSync(c.input) ? hashTree(c.input) : null;
    const listing = fs.readdirSync(path.dirname(out)).sort();
    const r = await dacAsync('decompose', c.input, '-o', out, ...(c.args ?? ['--rank', '3']));
    t.equal(r.status, c.code, `${c.name}: exit ${c.code}`);
    t.match(r.stderr, c.message, `${c.name}: says why`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${c.name}: one line (${r.stderr.trim()})`);
    t.equal(r.stdout, '', `${c.name}: nothing on stdout`);
    if (!c.out) t.notOk(fs.existsSync(out), `${c.name}: no output written`);
    t.same(fs.readdirSync(path.dirname(out)).sort(), listing, `${c.name}: no temp or report files left beside the output`);
    if (before) t.equal(hashTree(c.input), before, `${c.name}: input unchanged`);
  };
  // A few at a time: each is a separate process, mostly start-up.
  for (let i = 0; i < cases.length; i += 3) await Promise.all(cases.slice(i, i + 3).map((c, k) => check(c, i + k)));
  t.equal(dac('decompose', demoModel, '--rank', '3').status, 2, 'missing -o is a usage error');
});

t.test('demo: accuracy, MACs and latency before and after', async (t) => {
  const r = dac('demo', '--images', '60', '--runs', '1', '--json');
  t.equal(r.status, 0, r.stderr);
  const d = JSON.parse(r.stdout);
  t.equal(d.images, 60);
  t.equal(d.before.macs, 16444928);
  t.ok(d.after.macs <= 0.5 * d.before.macs, `MACs ${d.before.macs} -> ${d.after.macs}`);
  t.ok(d.before.accuracy > 0.9, `accuracy before ${d.before.accuracy}`);
  t.ok(d.after.accuracy > 0.85, `accuracy after ${d.after.accuracy}`);
  t.ok(d.before.latencyMs > 0 && d.after.latencyMs > 0);
  t.equal(d.layers.length, 13);
  const text = dac('demo', '--images', '20', '--runs', '1', '--method', 'spatial');
  t.equal(text.status, 0, text.stderr);
  t.match(text.stdout, /accuracy\s+\d+\.\d%\s+\d+\.\d%/);
  t.match(text.stdout, /MACs\/image\s+16,444,928/);
  t.match(text.stdout, /latency\s+[\d.]+ ms\s+[\d.]+ ms/);
});

t.test('IDX files: readers (plain and gzip), errors, and a size mismatch in compare', async (t) => {
  const pixels = Uint8Array.from({ length: 24 }, (_, i) => i * 10);
  const file = path.join(tmp, 'tiny-idx3.gz');
  fs.writeFileSync(file, encodeIdx([2, 3, 4], pixels));
  const plain = path.join(tmp, 'tiny-idx3');
  fs.writeFileSync(plain, encodeIdx([2, 3, 4], pixels, false));
  for (const f of [file, plain]) {
    const im = readIdxImages(f);
    t.same([im.count, im.rows, im.cols], [2, 3, 4]);
    t.same(Array.from(im.pixels), Array.from(pixels));
  }
  t.ok(Math.abs(normalizeImages(readIdxImages(file), 0.5, 0.25)[1] - (10 / 255 - 0.5) / 0.25) < 1e-6);
  const labels = readIdxLabels(demoLabels);
  t.equal(labels.length, 500);
  t.same(Array.from(labels.subarray(0, 8)), [9, 2, 1, 1, 6, 1, 4, 6], 'the embedded labels are the first test labels');
  t.throws(() => readIdxLabels(file), /IDX labels need 1 dimension, got 3/);
  const cut = path.join(tmp, 'cut-idx3');
  fs.writeFileSync(cut, encodeIdx([2, 3, 4], pixels, false).subarray(0, 30));
  t.throws(() => readIdxImages(cut), /IDX data has 14 bytes, dims 2x3x4 need 24/);
  const r = dac('compare', demoModel, demoModel, '--inputs', '0', '--input', file);
  t.equal(r.status, 1);
  t.match(r.stderr, /IDX images are 3x4x1, the model takes 28x28x1/);
});

t.test('zoo --help documents every zoo flag; --max-model-mb refuses a model before any work', async (t) => {
  const { zooHelp, zooOptions } = await import('../src/cli/zoo-command.js');
  for (const [flag, spec] of Object.entries(zooOptions)) {
    t.ok(zooHelp.includes(`--${flag}`), `zoo --help mentions --${flag}`);
    if (spec.short) t.ok(zooHelp.includes(`-${spec.short},`), `zoo --help mentions -${spec.short}`);
  }
  t.equal(dac('zoo', '--help').stdout, zooHelp);
  const out = path.join(tmp, 'max-mb', 'out');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const [small, bad, missingParent] = await Promise.all([
    dacAsync('decompose', demoModel, '-o', out, '--rank', '3', '--max-model-mb', '0.5'),
    dacAsync('decompose', demoModel, '-o', out, '--rank', '3', '--max-model-mb', '0'),
    dacAsync('decompose', vggOnnx, '-o', path.join(tmp, 'no-such-folder', 'deeper', 'x.onnx'), '--rank', '3'),
  ]);
  t.equal(small.status, 1);
  t.match(small.stderr, /field weightsManifest\.paths: .* over the limit of 0\.5 MB/, 'a 3.7 MB model under a 0.5 MB limit');
  t.notOk(fs.existsSync(out), 'nothing written');
  t.equal(bad.status, 2);
  t.match(bad.stderr, /--max-model-mb must be a number > 0/);
  t.equal(missingParent.status, 0, `-o creates missing parent folders (${missingParent.stderr})`);
  t.ok(fs.existsSync(path.join(tmp, 'no-such-folder', 'deeper', 'x.report.json')), 'with the report beside the model');
});

t.test('zoo --quiet prints only the failed models, on stderr; --json prints the summary', async (t) => {
  const zoo = path.join(tmp, 'quiet-zoo');
  writeTfjsNet(path.join(zoo, 'good'), randomSpec('good', 3), 3);
  fs.mkdirSync(path.join(zoo, 'bad'), { recursive: true });
  fs.writeFileSync(path.join(zoo, 'bad', 'model.json'), '{');
  const [quiet, json] = await Promise.all(
    ['--quiet', '--json'].map((flag) => dacAsync('zoo', zoo, '-o', path.join(tmp, `zoo-out${flag}`), '--energy', '0.9', '--jobs', '1', flag)),
  );
  t.equal(quiet.status, 1, '--quiet: exit 1, a model failed');
  t.equal(quiet.stdout, '', '--quiet: nothing on stdout');
  t.match(quiet.stderr, /^dac zoo: failed bad\/model\.json: [^\n]+\n$/, `--quiet: one line on stderr, the failed model (${quiet.stderr.trim()})`);
  t.equal(json.status, 1, '--json: exit 1 too');
  t.equal(json.stderr, '', '--json: no progress on stderr');
  const summary = JSON.parse(json.stdout);
  t.same(summary, JSON.parse(fs.readFileSync(path.join(tmp, 'zoo-out--json', 'summary.json'), 'utf8')), '--json: the summary as summary.json holds it');
  t.same([summary.counts.ok, summary.counts.failed], [1, 1]);
});

t.test('decompose and zoo read their shared flags with one settingsFrom', async (t) => {
  const { settingsFrom } = await import('../src/cli/settings.js');
  const { UsageError } = await import('../src/cli/common.js');
  t.same(settingsFrom({ rank: '4' }, 'zoo'), { method: 'dac', rank: 4 }, 'flags not given are absent keys');
  t.same(
    settingsFrom({ method: 'auto', 'flops-saved': '50%', 'skip-first': true, 'fold-bn': true, 'no-bias-correction': true, threads: '2', weighting: 'plain' }, 'decompose'),
    { method: 'auto', flopsSaved: 0.5, skipFirst: true, foldBn: true, biasCorrection: false, threads: 2, weighting: 'plain' },
  );
  for (const command of ['decompose', 'zoo']) {
    for (const [values, message] of [
      [{ rank: '0' }, /--rank must be at least 1, got 0/],
      [{}, /give a policy/],
      [{ rank: '2', energy: '0.9' }, /give only one policy/],
      [{ method: 'auto', rank: '2' }, /--method auto picks ranks itself/],
      [{ method: 'svd', rank: '2' }, /--method must be dac, spatial, channel or auto/],
      [{ rank: '2', 'depth-penalty': '-1' }, /--depth-penalty must be >= 0/],
    ] as const) {
      let err: unknown = null;
      try {
        settingsFrom(values, command);
      } catch (e) {
        err = e;
      }
      t.ok(err instanceof UsageError, `${command}: a usage error for ${JSON.stringify(values)}`);
      t.match(err, { message, command }, `${command}: ${message}`);
    }
  }
});

t.test('inspect with a policy prints the plan decompose applies, writing nothing', async (t) => {
  const hash = hashTree(demoModel);
  const before = fs.readdirSync(tmp).sort();
  const text = dac('inspect', demoModel, '--method', 'auto', '--flops-saved', '50%');
  t.equal(text.status, 0, text.stderr);
  t.match(text.stdout, /plan \(method auto, weighting bn\): \d+ of 13 convs replaced/);
  for (let i = 1; i <= 13; i++) t.match(text.stdout, new RegExp(`\\nconv2d_${i} +(keep|dac|spatial|channel) `), `conv2d_${i} has a plan row`);
  t.match(text.stdout, /total: MACs 16,444,928 -> [\d,]+ \(5\d\.\d% saved\), params .* predicted loss \d/);

  const json = dac('inspect', demoModel, '--json', '--method', 'spatial', '--flops-saved', '0.4', '--skip-first');
  t.equal(json.status, 0, json.stderr);
  const plan = JSON.parse(json.stdout).plan;
  t.equal(plan.layers.length, 13);
  t.ok(1 - plan.flops.after / plan.flops.before >= 0.4, 'the budget is met');
  t.equal(plan.layers[0].method, 'keep');
  t.match(plan.layers[0].reason, /skipFirst/);
  let after = 1280;
  for (const l of plan.layers) {
    t.ok(l.method === 'keep' || l.macsAfter < l.macsBefore, `${l.name}: saves MACs or is kept`);
    t.ok(l.predictedError >= 0 && l.predictedError <= 1, `${l.name}: predicted error in [0, 1]`);
    after += l.macsAfter;
  }
  t.equal(plan.flops.after, after, 'the totals add up');
  t.equal(hashTree(demoModel), hash, 'input unchanged');
  t.same(fs.readdirSync(tmp).sort(), before, 'nothing written');

  // the same flags through decompose give the same plan
  const out = path.join(tmp, 'vgg-inspected');
  const r = dac('decompose', demoModel, '-o', out, '--method', 'spatial', '--flops-saved', '0.4', '--skip-first', '-q');
  t.equal(r.status, 0, r.stderr);
  const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
  const pick = (ls: { name: string; method: string; rank: number; macsAfter: number }[]) => ls.map((l) => [l.name, l.method, l.rank, l.macsAfter]);
  t.same(pick(report.layers), pick(plan.layers), 'decompose applies the plan inspect printed');

  const energy = JSON.parse(dac('inspect', vggOnnx, '--json', '--energy', '0.8').stdout).plan;
  t.equal(energy.method, 'dac', 'dac is the default method');
  t.ok(energy.layers.every((l: { method: string; macsAfter: number; macsBefore: number }) => l.method === 'keep' || l.macsAfter < l.macsBefore));

  for (const [args, message] of [
    [['--method', 'auto'], /give a policy/],
    [['--rank', '3', '--energy', '0.9'], /give only one policy/],
    [['--flops-saved', '1.5'], /--flops-saved must be a fraction/],
    [['--rank', '10'], /rank 10 is out of range 1\.\.9/],
    [['--layers', 'nope', '--rank', '2'], /nope/],
  ] as [string[], RegExp][]) {
    const bad = dac('inspect', demoModel, ...args);
    t.not(bad.status, 0, args.join(' '));
    t.match(bad.stderr, message, args.join(' '));
  }
});
