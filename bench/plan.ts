// `npx tsx bench/plan.ts`: how long planning takes (src/plan), per model and
// policy, on fashion-vgg and on VGG16-sized models (224x224 input, with and
// without BatchNorm, random weights, generated into a temp folder).
//
//   npx tsx bench/plan.ts [--models fashion,vgg16,vgg16bn] [--threads N] [--dump DIR] [--build]
//
// --threads: the planner's and the build's threads (default: every core, as a
// `dac zoo --jobs 1` job gets them; `dac decompose` too, unless --threads says otherwise).
//
// Each (model, weighting, method) is planned in a fresh conv list, so nothing
// is cached between rows. --dump writes every plan (and, with --build, a
// digest of the replacement weights) as JSON, to check that a faster planner
// gives the same plans.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { loadModel } from '../src/formats/index.js';
import { getBackend } from '../src/index.js';
import { buildReplacements, planModel, type PlanOptions } from '../src/plan/index.js';
import { vgg16Spec, writeTfjsNet } from './synthetic.js';

const FASHION = path.resolve(__dirname, '..', '..', 'shared', 'models', 'fashion-vgg', 'tfjs');

async function modelPath(name: string, dir: string): Promise<string> {
  if (name === 'fashion') return FASHION;
  const spec = vgg16Spec(name);
  if (name === 'vgg16bn') spec.convs = spec.convs.map((c) => ({ ...c, bn: true }));
  else if (name !== 'vgg16') throw new Error(`unknown model ${name}`);
  const out = path.join(dir, name);
  if (!fs.existsSync(path.join(out, 'model.json'))) writeTfjsNet(out, spec, 16);
  return out;
}

/** Sum and sum of squares of every replacement array: enough to see that two builds agree. */
function digest(rep: Record<string, unknown>): Record<string, [number, number]> {
  const out: Record<string, [number, number]> = {};
  for (const [k, v] of Object.entries(rep)) {
    if (!(v instanceof Float32Array)) continue;
    let s = 0;
    let s2 = 0;
    for (const x of v) {
      s += x;
      s2 += x * x;
    }
    out[k] = [s, s2];
  }
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { models: { type: 'string' }, threads: { type: 'string' }, dump: { type: 'string' }, build: { type: 'boolean' }, dir: { type: 'string' } },
  });
  const models = (values.models ?? 'fashion,vgg16,vgg16bn').split(',');
  const dir = values.dir ?? path.join(os.tmpdir(), 'dac-bench-plan');
  const backend = getBackend();
  const threads = values.threads === undefined ? os.availableParallelism() : Number(values.threads);
  if (!Number.isInteger(threads) || threads < 1) throw new Error('--threads must be an integer >= 1');
  process.stdout.write(`threads: ${threads}; load average ${os.loadavg().map((v) => v.toFixed(2)).join(', ')}\n`);
  const rows: string[] = ['| model | weighting | method | policy | plan s (CPU s) | build s (CPU s) |', '|---|---|---|---|---|---|'];
  for (const name of models) {
    const file = await modelPath(name, dir);
    for (const weighting of ['plain', 'bn'] as const) {
      for (const method of ['dac', 'auto'] as const) {
        const model = await loadModel(file);
        const options: PlanOptions = { method, flopsSaved: 0.5, weighting };
        // CPU time beside wall time: the machine may be shared.
        const t0 = performance.now();
        const c0 = process.cpuUsage();
        const plan = planModel(model.convs, model.other, options, backend, threads);
        const t1 = performance.now();
        const c1 = process.cpuUsage();
        const fmt = (ms: number, cpu: NodeJS.CpuUsage) => `${(ms / 1000).toFixed(2)} (${((cpu.user + cpu.system) / 1e6).toFixed(2)})`;
        let build = '';
        let reps: unknown = null;
        if (values.build) {
          const r = buildReplacements(model.convs, plan, backend, { threads });
          build = fmt(performance.now() - t1, process.cpuUsage(c1));
          reps = r.map((x) => ({ name: x.name, ...digest(x as unknown as Record<string, unknown>) }));
        }
        rows.push(`| ${name} | ${weighting} | ${method} | flops 0.5 | ${fmt(t1 - t0, process.cpuUsage(c0))} | ${build} |`);
        process.stderr.write(`${rows[rows.length - 1]}\n`);
        if (values.dump) {
          fs.mkdirSync(values.dump, { recursive: true });
          fs.writeFileSync(path.join(values.dump, `${name}-${weighting}-${method}.json`), JSON.stringify({ plan, reps }, null, 1));
        }
      }
    }
  }
  process.stdout.write(`${rows.join('\n')}\n`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
