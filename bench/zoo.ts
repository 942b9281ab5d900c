// `npm run bench:zoo`: throughput and memory of `dac zoo` on a zoo of
// VGG16-sized models (VGG16's 13 convs and a 1000-way head, random weights,
// ~59 MB each), with --jobs 1 and 2, and where one model's time goes.
//
//   npm run bench:zoo -- [--models 200] [--jobs 1,2] [--format both|tfjs|onnx]
//                        [--policy rank4,flops50,auto50] [--stage-reps 2] [--no-stages]
//                        [--dir /tmp/x] [--out bench/results/zoo.md] [--note 'text for the results']
// (--models 0: the stages only.)
//
// Stages: one model of each format goes through the steps of a zoo job one
// at a time, in this process (best of --stage-reps): read/parse (loadModel),
// plan (planModel), decompose (the backend's factorisations: the time spent
// in its decompose* calls, which an explicit-rank plan makes and the build
// reuses), build (the rest of buildReplacements: the error model's refit and
// corrections), apply (model.apply), report (the real
// weight error of every layer), serialize (the output's bytes in memory)
// and write (the rest of what a zoo job's writeDecomposed does: hashes,
// files, fsync, the self-check that loads the written model back, renames).
//
// One model of each format is generated and the zoo is made of hard links to
// it (one folder per TF.js model), so the inputs take ~120 MB of disk however
// many models there are; each run's outputs (~40 MB a model) are deleted
// before the next. Each run is a child process, so its peak RSS (all worker
// threads included: they share the process) is measured alone.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { Backend } from '../src/backend/backend.js';
import { getBackend } from '../src/backend/loader.js';
import { replacementError } from '../src/model/reconstruct.js';
import { loadModel, type LoadedModel } from '../src/formats/index.js';
import { backendInfo } from '../src/index.js';
import { buildReplacements, planModel, planOptionsFrom } from '../src/plan/index.js';
import { prepareWrite, writeDecomposed } from '../src/write.js';
import type { ZooSettings } from '../src/zoo/job.js';
import { runZoo } from '../src/zoo/run.js';
import { vgg16Spec, writeOnnxNet, writeTfjsNet } from './synthetic.js';

interface ChildResult {
  policy: string;
  jobs: number;
  seconds: number;
  counts: { total: number; ok: number; failed: number };
  inputBytes: number;
  flopsSaved: number;
  peakRssMb: number;
  meanModelSeconds: number;
  /** CPU seconds (user + system, every thread) of the whole run per model: what the work costs, whatever else runs. */
  cpuPerModel: number;
  /** 1-minute load average at the end: other processes on the machine slow the run down. */
  loadAverage: number;
  /** Mean of the 1-minute load average sampled every 5 s during the run (set by the parent). */
  meanLoad?: number;
}

const POLICIES: Record<string, ZooSettings> = {
  rank4: { method: 'dac', rank: 4 },
  flops50: { method: 'dac', flopsSaved: 0.5 },
  auto50: { method: 'auto', flopsSaved: 0.5 },
};

const STAGES = ['read', 'plan', 'decompose', 'build', 'apply', 'report', 'serialize', 'write'] as const;
type StageTimes = Record<(typeof STAGES)[number], number>;

/** Wall and CPU (user + system, every thread of the process) seconds. */
interface Spent {
  wall: number;
  cpu: number;
}
const cpuSeconds = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** The backend, with the time spent in its factorisations (decompose*) added to `spent`. */
function timedBackend(b: Backend, spent: Spent): Backend {
  return new Proxy(b, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver) as unknown;
      if (typeof v !== 'function') return v;
      if (typeof key !== 'string' || !key.startsWith('decompose')) return v.bind(target);
      return (...args: unknown[]) => {
        const t = performance.now();
        const c = cpuSeconds();
        try {
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        } finally {
          spent.wall += (performance.now() - t) / 1000;
          spent.cpu += cpuSeconds() - c;
        }
      };
    },
  });
}

/** The output's bytes in memory, as save() makes them (format-specific; 0 ms when the format has no such step). */
function serialize(m: LoadedModel): void {
  const x = m as unknown as { bytes?: () => unknown; outputFiles?: () => unknown };
  if (typeof x.bytes === 'function') x.bytes();
  else if (typeof x.outputFiles === 'function') x.outputFiles();
}

/**
 * Wall and CPU seconds per stage of one zoo job on `file` (what runZooJob and
 * decomposeLoaded do, step by step); of `reps` runs, the one with the least
 * CPU time in all. CPU time is what a quiet machine's wall time would be for
 * the single-threaded stages; on a shared machine wall time is mostly waiting.
 */
async function stageTimes(file: string, settings: ZooSettings, reps: number, scratch: string): Promise<{ wall: StageTimes; cpu: StageTimes }> {
  let best: { wall: StageTimes; cpu: StageTimes } | null = null;
  const sum = (t: StageTimes): number => STAGES.reduce((a, k) => a + t[k], 0);
  const { foldBn, ...s } = settings;
  for (let i = 0; i < reps; i++) {
    const core: Spent = { wall: 0, cpu: 0 };
    const backend = timedBackend(getBackend(), core);
    const wall = {} as StageTimes;
    const cpu = {} as StageTimes;
    let w0 = performance.now();
    let c0 = cpuSeconds();
    // The backend's factorisations count as 'decompose', in whichever stage they ran (an explicit-rank plan makes them).
    let core0 = { ...core };
    const lap = (k: keyof StageTimes): void => {
      const w = performance.now();
      const c = cpuSeconds();
      wall[k] = (w - w0) / 1000 - (core.wall - core0.wall);
      cpu[k] = c - c0 - (core.cpu - core0.cpu);
      w0 = w;
      c0 = c;
      core0 = { ...core };
    };
    const loaded = await loadModel(file);
    const model = foldBn ? loaded.foldBatchNorm() : loaded;
    lap('read');
    // As a zoo job with --jobs 1 plans and builds: every core for the one model.
    const threads = s.threads ?? os.availableParallelism();
    const plan = planModel(model.convs, model.other, planOptionsFrom(s), backend, threads);
    lap('plan');
    const reps0 = buildReplacements(model.convs, plan, backend, { biasCorrection: s.biasCorrection ?? true, threads });
    lap('build');
    wall.decompose = core.wall;
    cpu.decompose = core.cpu;
    const out = model.apply(reps0);
    lap('apply');
    const convs = new Map(model.convs.map((c) => [c.name, c]));
    for (const r of reps0) replacementError(r, convs.get(r.name)!, backend);
    lap('report');
    serialize(out);
    lap('serialize');
    const target = path.join(scratch, `stage-${i}${model.format === 'onnx' ? '.onnx' : ''}`);
    fs.rmSync(target, { recursive: true, force: true });
    const kind = model.format === 'onnx' ? 'file' : 'folder';
    await writeDecomposed(prepareWrite({ input: file, output: target, kind, report: null, requireOwnedFolder: false, lock: false }), out, null);
    lap('write');
    // writeDecomposed serializes again: what it adds is the writing.
    wall.write = Math.max(0, wall.write - wall.serialize);
    cpu.write = Math.max(0, cpu.write - cpu.serialize);
    if (!best || sum(cpu) < sum(best.cpu)) best = { wall, cpu };
  }
  return best!;
}

/** Child mode: one zoo run; prints its result as JSON on the last stdout line. */
async function child(spec: { zoo: string; out: string; jobs: number; policy: string }): Promise<void> {
  const s = await runZoo({ root: spec.zoo, out: spec.out, settings: POLICIES[spec.policy], jobs: spec.jobs, progress: process.stderr });
  const ok = s.models.filter((m) => m.status === 'ok');
  const result: ChildResult = {
    policy: spec.policy,
    jobs: spec.jobs,
    seconds: s.seconds,
    counts: s.counts,
    inputBytes: s.inputBytes,
    flopsSaved: s.flops.saved,
    // maxRSS is the process's peak resident set in KiB, worker threads included.
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    meanModelSeconds: ok.reduce((a, m) => a + (m.seconds ?? 0), 0) / Math.max(1, ok.length),
    cpuPerModel: (process.resourceUsage().userCPUTime + process.resourceUsage().systemCPUTime) / 1e6 / Math.max(1, s.counts.total),
    loadAverage: os.loadavg()[0],
  };
  process.stdout.write(`\n${JSON.stringify(result)}\n`);
}

function runChild(spec: object): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...process.execArgv, __filename, '--child', JSON.stringify(spec)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    // The machine may be shared: how loaded it was during the run says how far the numbers are from an idle one.
    const loads = [os.loadavg()[0]];
    const sampler = setInterval(() => loads.push(os.loadavg()[0]), 5000);
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', (code) => {
      clearInterval(sampler);
      const last = out.trim().split('\n').pop() ?? '';
      if (code !== 0 && code !== 1) reject(new Error(`zoo run exited with ${code}: ${out.slice(-500)}`));
      else resolve({ ...(JSON.parse(last) as ChildResult), meanLoad: loads.reduce((a, b) => a + b, 0) / loads.length });
    });
  });
}

function makeZoo(dir: string, models: number, format: string): void {
  const src = path.join(dir, 'src');
  const zoo = path.join(dir, 'zoo');
  fs.mkdirSync(zoo, { recursive: true });
  const formats = format === 'both' ? ['tfjs', 'onnx'] : [format];
  if (formats.includes('tfjs') && !fs.existsSync(path.join(src, 'tfjs/model.json'))) writeTfjsNet(path.join(src, 'tfjs'), vgg16Spec('vgg16_tfjs'), 16);
  if (formats.includes('onnx') && !fs.existsSync(path.join(src, 'vgg16.onnx'))) writeOnnxNet(path.join(src, 'vgg16.onnx'), vgg16Spec('vgg16_onnx'), 17);
  for (let i = 0; i < models; i++) {
    const f = formats[i % formats.length];
    const name = `m${String(i).padStart(4, '0')}`;
    // A kept --dir holds the zoo of an earlier run already.
    if (fs.existsSync(path.join(zoo, f === 'tfjs' ? name : `${name}.onnx`))) continue;
    if (f === 'tfjs') {
      const d = path.join(zoo, name);
      fs.mkdirSync(d);
      for (const file of fs.readdirSync(path.join(src, 'tfjs'))) fs.linkSync(path.join(src, 'tfjs', file), path.join(d, file));
    } else {
      fs.linkSync(path.join(src, 'vgg16.onnx'), path.join(zoo, `${name}.onnx`));
    }
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'string' },
      models: { type: 'string', default: '200' },
      jobs: { type: 'string', default: '1,2' },
      format: { type: 'string', default: 'both' },
      policy: { type: 'string', default: 'rank4,flops50,auto50' },
      'stage-reps': { type: 'string', default: '2' },
      'no-stages': { type: 'boolean', default: false },
      dir: { type: 'string' },
      out: { type: 'string', default: path.join(__dirname, 'results', 'zoo.md') },
      keep: { type: 'boolean', default: false },
      note: { type: 'string' },
    },
  });
  if (values.child) return child(JSON.parse(values.child));
  const models = Number(values.models);
  const jobsList = values.jobs!.split(',').map(Number);
  if (!Number.isInteger(models) || models < 0 || jobsList.some((j) => !Number.isInteger(j) || j < 1)) throw new Error('bad --models/--jobs');
  if (!['both', 'tfjs', 'onnx'].includes(values.format!)) throw new Error('--format must be both, tfjs or onnx');
  const policies = values.policy!.split(',');
  if (policies.some((p) => !POLICIES[p])) throw new Error(`--policy must be a list of ${Object.keys(POLICIES).join(', ')}`);
  const stageReps = Number(values['stage-reps']);
  if (!Number.isInteger(stageReps) || stageReps < 1) throw new Error('bad --stage-reps');

  const dir = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'dac-bench-zoo-'));
  const t0 = performance.now();
  makeZoo(dir, models, values.format!);
  process.stderr.write(`zoo of ${models} models in ${dir} (generated in ${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);

  const results: ChildResult[] = [];
  const stages: { policy: string; format: string; load: string; t: { wall: StageTimes; cpu: StageTimes } }[] = [];
  const uptime = (): string => os.loadavg().map((x) => x.toFixed(2)).join(', ');
  try {
    if (!values['no-stages']) {
      const src = path.join(dir, 'src');
      const files = [
        ['tfjs', path.join(src, 'tfjs/model.json')],
        ['onnx', path.join(src, 'vgg16.onnx')],
      ].filter(([, f]) => fs.existsSync(f));
      const scratch = fs.mkdtempSync(path.join(dir, 'stages-'));
      for (const policy of policies) {
        for (const [format, file] of files) {
          process.stderr.write(`stages: ${policy} ${format}\n`);
          const t = await stageTimes(file, POLICIES[policy], stageReps, scratch);
          stages.push({ policy, format, load: uptime(), t });
          process.stderr.write(`  cpu ${STAGES.map((k) => `${k} ${t.cpu[k].toFixed(3)}`).join(', ')} s\n`);
        }
      }
      fs.rmSync(scratch, { recursive: true, force: true });
    }
    for (const policy of models > 0 ? policies : []) {
      for (const jobs of jobsList) {
        const out = path.join(dir, `out-j${jobs}`);
        fs.rmSync(out, { recursive: true, force: true });
        process.stderr.write(`${policy} --jobs ${jobs}\n`);
        results.push(await runChild({ zoo: path.join(dir, 'zoo'), out, jobs, policy }));
        fs.rmSync(out, { recursive: true, force: true });
      }
    }
  } finally {
    if (!values.keep && !values.dir) fs.rmSync(dir, { recursive: true, force: true });
  }

  const info = backendInfo();
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const mb = (b: number) => b / (1024 * 1024);
  const lines = [
    '# dac zoo throughput',
    '',
    `Generated by \`npm run bench:zoo -- --models ${models} --jobs ${values.jobs} --format ${values.format} --policy ${values.policy}\` ` +
      `on ${new Date().toISOString().slice(0, 10)}.`,
    '',
    `- machine: ${cpu}, ${os.availableParallelism()} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB; node ${process.version}; ` +
      `backend ${info.backend} (${info.isa})`,
    `- zoo: ${models} VGG16-sized models (13 convs of VGG16 at 224x224x3, random weights, ` +
      `${mb(results[0]?.inputBytes / Math.max(1, results[0]?.counts.total ?? 1)).toFixed(1)} MiB of files each), ` +
      `format ${values.format}${values.format === 'both' ? ' (alternating TF.js folders and .onnx files)' : ''}`,
    `- policies: ${policies.map((p) => `${p} = \`${JSON.stringify(POLICIES[p])}\``).join(', ')}`,
    ...(values.note ? [`- note: ${values.note}`] : []),
    '- each run: fresh output folder, its own process; peak RSS = the process maximum (main thread and all workers);',
    `  load = 1-minute load average, mean over the run (sampled every 5 s) / at its end (${os.availableParallelism()} cores: above that, other processes competed)`,
    '',
    ...(stages.length
      ? [
          `## Where one model's time goes (CPU seconds of the process, all threads; run with the least CPU of ${stageReps}; native threads = ${os.availableParallelism()})`,
          '',
          `| policy | format | ${STAGES.join(' | ')} | total CPU | total wall | load (1/5/15 min) |`,
          `|---|---|${STAGES.map(() => '---:|').join('')}---:|---:|---|`,
          ...stages.map(
            (x) =>
              `| ${x.policy} | ${x.format} | ${STAGES.map((k) => x.t.cpu[k].toFixed(3)).join(' | ')} | ` +
              `${STAGES.reduce((a, k) => a + x.t.cpu[k], 0).toFixed(2)} | ${STAGES.reduce((a, k) => a + x.t.wall[k], 0).toFixed(2)} | ${x.load} |`,
          ),
          '',
          '## Throughput',
          '',
        ]
      : []),
    '| policy | --jobs | models ok | wall (s) | models/s | MiB/s | mean s/model (in worker) | CPU s/model | FLOPs saved | peak RSS (MiB) | load (mean / end) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.policy} | ${r.jobs} | ${r.counts.ok}/${r.counts.total} | ${r.seconds.toFixed(1)} | ${(r.counts.ok / r.seconds).toFixed(3)} | ` +
        `${(mb(r.inputBytes) / r.seconds).toFixed(1)} | ${r.meanModelSeconds.toFixed(2)} | ${r.cpuPerModel.toFixed(2)} | ${(r.flopsSaved * 100).toFixed(1)}% | ` +
        `${r.peakRssMb.toFixed(0)} | ${(r.meanLoad ?? NaN).toFixed(1)} / ${r.loadAverage.toFixed(1)} |`,
    ),
    '',
  ];
  fs.mkdirSync(path.dirname(values.out!), { recursive: true });
  fs.writeFileSync(values.out!, lines.join('\n'));
  process.stdout.write(lines.join('\n'));
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
