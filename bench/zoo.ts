// `npm run bench:zoo`: throughput and memory of `dac zoo` on a zoo of
// VGG16-sized models (VGG16's 13 convs and a 1000-way head, random weights,
// ~59 MB each), with --jobs 1 and 2, and where one model's time goes.
//
//   npm run bench:zoo -- [--models 200] [--jobs 1,2] [--format both|tfjs|onnx]
//                        [--policy rank4,flops50,auto50] [--stage-reps 2] [--no-stages]
//                        [--dir /tmp/x] [--out bench/results/zoo.md] [--note 'text for the results']
// (--models 0: the stages only.) The results are appended to --out as a dated section.
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
// Then the whole job (runZooJob, in this process, outside the pool): the
// stages plus its bookkeeping (old marker and temporaries cleared, input
// stamps, the report file, the completion marker).
//
// The pool's own cost: each run is repeated (same --jobs, same policy, its
// own process) over a zoo of --jobs tiny models (a few KiB each), the pool
// with no real model in it: Node, the library, the backend, the worker
// threads. Its CPU seconds are the run's fixed cost; the run's CPU per model
// less that share and less one job's CPU is what the pool adds per model.
// Its RSS is the idle pool's: (peak - idle) / jobs is what one VGG16-sized
// job adds, to set against the model's size.
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
import { runZooJob, type ZooSettings } from '../src/zoo/job.js';
import { settingsHash } from '../src/zoo/resume.js';
import { DEFAULT_TIMEOUT_MS, prepareZooProcess, packageVersion, runZoo } from '../src/zoo/run.js';
import type { ModelFormat } from '../src/model/types.js';
import { DEFAULT_MAX_MODEL_BYTES } from '../src/io/limits.js';
import { vgg16Spec, writeOnnxNet, writeTfjsNet, type NetSpec } from './synthetic.js';

interface ChildResult {
  policy: string;
  jobs: number;
  seconds: number;
  counts: { total: number; ok: number; failed: number };
  inputBytes: number;
  flopsSaved: number;
  peakRssMb: number;
  meanModelSeconds: number;
  /** CPU seconds (user + system, every thread) of the whole run, process start included: what the work costs, whatever else runs. */
  cpuSeconds: number;
  /** The same per model. */
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

/**
 * CPU seconds of one whole zoo job (runZooJob: stages and bookkeeping) on
 * `file`, in this process, outside the pool; the least of `reps` runs.
 */
async function jobSeconds(file: string, format: ModelFormat, settings: ZooSettings, reps: number, scratch: string): Promise<number> {
  const root = path.dirname(file);
  const entry = { rel: path.relative(root, file).split(path.sep).join('/'), path: file, format };
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const outRoot = path.join(scratch, `job-${i}`);
    fs.rmSync(outRoot, { recursive: true, force: true });
    fs.mkdirSync(outRoot, { recursive: true });
    const c0 = cpuSeconds();
    const r = await runZooJob({
      entry,
      outRoot,
      settings,
      optionsHash: settingsHash(settings),
      limits: { maxModelBytes: DEFAULT_MAX_MODEL_BYTES, timeoutMs: DEFAULT_TIMEOUT_MS },
      // As a zoo run with --jobs 1 gives its one job: every core.
      threads: os.availableParallelism(),
      toolVersion: packageVersion(),
    });
    if (r.status !== 'ok') throw new Error(`zoo job on ${file} ended ${r.status}: ${r.reason}`);
    best = Math.min(best, cpuSeconds() - c0);
  }
  return best;
}

/**
 * Peak resident set of this process (every thread) in MiB: VmHWM where /proc
 * has it. getrusage's maxRSS will not do for a child: Linux carries the
 * peak over fork and exec, so a child of a parent holding 250 MiB (this
 * bench after its stages) reports at least 250 MiB.
 */
function peakRssMb(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // No /proc (macOS): maxRSS.
  }
  return process.resourceUsage().maxRSS / 1024;
}

/** Child mode: one zoo run; prints its result as JSON on the last stdout line. */
async function child(spec: { zoo: string; out: string; jobs: number; policy: string }): Promise<void> {
  // As `dac zoo` does.
  prepareZooProcess();
  const s = await runZoo({ root: spec.zoo, out: spec.out, settings: POLICIES[spec.policy], jobs: spec.jobs, progress: process.stderr });
  const ok = s.models.filter((m) => m.status === 'ok');
  const usage = process.resourceUsage();
  const cpu = (usage.userCPUTime + usage.systemCPUTime) / 1e6;
  const result: ChildResult = {
    policy: spec.policy,
    jobs: spec.jobs,
    seconds: s.seconds,
    counts: s.counts,
    inputBytes: s.inputBytes,
    flopsSaved: s.flops.saved,
    peakRssMb: peakRssMb(),
    meanModelSeconds: ok.reduce((a, m) => a + (m.seconds ?? 0), 0) / Math.max(1, ok.length),
    cpuSeconds: cpu,
    cpuPerModel: cpu / Math.max(1, s.counts.total),
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

/** A net of a few KiB: a zoo of these runs the pool with next to no model in memory. */
const TINY: NetSpec = { name: 'tiny', input: [16, 16, 3], convs: [{ filters: 8, kernel: [3, 3] }, { filters: 8, kernel: [3, 3], pool: true }], classes: 4 };

/** `models` tiny models in `zoo`, the formats alternating as in the real zoo. */
function makeTinyZoo(zoo: string, models: number, format: string): void {
  const formats = format === 'both' ? ['tfjs', 'onnx'] : [format];
  for (let i = 0; i < models; i++) {
    const name = `t${i}`;
    if (formats[i % formats.length] === 'tfjs') writeTfjsNet(path.join(zoo, name), { ...TINY, name }, i + 1);
    else writeOnnxNet(path.join(zoo, `${name}.onnx`), { ...TINY, name }, i + 1);
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

  const results: (ChildResult & { idle: ChildResult })[] = [];
  const stages: { policy: string; format: string; load: string; t: { wall: StageTimes; cpu: StageTimes }; job: number }[] = [];
  const uptime = (): string => os.loadavg().map((x) => x.toFixed(2)).join(', ');
  try {
    if (!values['no-stages']) {
      const src = path.join(dir, 'src');
      const files = (
        [
          ['tfjs', path.join(src, 'tfjs/model.json')],
          ['onnx', path.join(src, 'vgg16.onnx')],
        ] as [ModelFormat, string][]
      ).filter(([, f]) => fs.existsSync(f));
      const scratch = fs.mkdtempSync(path.join(dir, 'stages-'));
      for (const policy of policies) {
        for (const [format, file] of files) {
          process.stderr.write(`stages: ${policy} ${format}\n`);
          const t = await stageTimes(file, POLICIES[policy], stageReps, scratch);
          const job = await jobSeconds(file, format, POLICIES[policy], stageReps, scratch);
          stages.push({ policy, format, load: uptime(), t, job });
          process.stderr.write(`  cpu ${STAGES.map((k) => `${k} ${t.cpu[k].toFixed(3)}`).join(', ')} s; whole job ${job.toFixed(3)} s\n`);
        }
      }
      fs.rmSync(scratch, { recursive: true, force: true });
    }
    for (const policy of models > 0 ? policies : []) {
      for (const jobs of jobsList) {
        const tiny = path.join(dir, `tiny-${jobs}`);
        const out = path.join(dir, `out-j${jobs}`);
        if (!fs.existsSync(tiny)) makeTinyZoo(tiny, jobs, values.format!);
        fs.rmSync(out, { recursive: true, force: true });
        process.stderr.write(`${policy} --jobs ${jobs}: the pool idle (${jobs} tiny models)\n`);
        const idle = await runChild({ zoo: tiny, out, jobs, policy });
        fs.rmSync(out, { recursive: true, force: true });
        process.stderr.write(`${policy} --jobs ${jobs}\n`);
        results.push({ ...(await runChild({ zoo: path.join(dir, 'zoo'), out, jobs, policy })), idle });
        fs.rmSync(out, { recursive: true, force: true });
      }
    }
  } finally {
    if (!values.keep && !values.dir) fs.rmSync(dir, { recursive: true, force: true });
  }

  const info = backendInfo();
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const mb = (b: number) => b / (1024 * 1024);
  // Every model of the zoo is a copy of one of two files of about the same size: the largest is about the mean.
  const modelMb = (r: ChildResult) => mb(r.inputBytes / Math.max(1, r.counts.total));
  // One job's whole CPU time in this process, over the zoo's formats.
  const jobCpu = (policy: string): number | undefined => {
    const js = stages.filter((x) => x.policy === policy).map((x) => x.job);
    return js.length ? js.reduce((a, b) => a + b, 0) / js.length : undefined;
  };
  const command =
    `npm run bench:zoo -- --models ${models} --jobs ${values.jobs} --format ${values.format} --policy ${values.policy}` +
    (values['no-stages'] ? ' --no-stages' : ` --stage-reps ${stageReps}`);
  const lines = [
    `## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: \`${command}\``,
    '',
    `- machine: ${cpu}, ${os.availableParallelism()} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB; node ${process.version}; ` +
      `backend ${info.backend} (${info.isa})`,
    `- zoo: ${models} VGG16-sized models (13 convs of VGG16 at 224x224x3, random weights` +
      `${results.length ? `, ${modelMb(results[0]).toFixed(1)} MiB of files each` : ''}), ` +
      `format ${values.format}${values.format === 'both' ? ' (alternating TF.js folders and .onnx files)' : ''}`,
    `- policies: ${policies.map((p) => `${p} = \`${JSON.stringify(POLICIES[p])}\``).join(', ')}`,
    ...(values.note ? [`- note: ${values.note}`] : []),
    '- each run: fresh output folder, its own process; peak RSS = the process\'s high-water mark (VmHWM: main thread and all workers);',
    `  load = 1-minute load average, mean over the run (sampled every 5 s) / at its end (${os.availableParallelism()} cores: above that, other processes competed)`,
    '',
    ...(stages.length
      ? [
          `### Where one model's time goes (CPU seconds of the process, all threads; run with the least CPU of ${stageReps}; native threads = ${os.availableParallelism()})`,
          '',
          'job = the whole zoo job (runZooJob) in this process, outside the pool: the stages plus clearing the old marker, stamping',
          'the inputs, writing the report and the completion marker.',
          '',
          `| policy | format | ${STAGES.join(' | ')} | total CPU | job | job - total | total wall | load (1/5/15 min) |`,
          `|---|---|${STAGES.map(() => '---:|').join('')}---:|---:|---:|---:|---|`,
          ...stages.map((x) => {
            const total = STAGES.reduce((a, k) => a + x.t.cpu[k], 0);
            return (
              `| ${x.policy} | ${x.format} | ${STAGES.map((k) => x.t.cpu[k].toFixed(3)).join(' | ')} | ` +
              `${total.toFixed(2)} | ${x.job.toFixed(2)} | ${(x.job - total).toFixed(2)} | ${STAGES.reduce((a, k) => a + x.t.wall[k], 0).toFixed(2)} | ${x.load} |`
            );
          }),
          '',
        ]
      : []),
    ...(results.length
      ? [
          '### Throughput and memory',
          '',
          'CPU s/model: the run\'s CPU time (every thread, process start included) / models. The idle run: the same run (same',
          '--jobs and policy, its own process) over a zoo of --jobs tiny models: Node, the library, the backend and the workers',
          'with no real model. Pool CPU: fixed = the idle run\'s CPU seconds (starting the process and the workers, loading the',
          'library in each); per model = (run CPU - fixed) / models - one job\'s CPU in one process (the stage table\'s job',
          'column, mean over the formats; blank without stages): messages, discovery, progress, summary, and what a worker',
          'thread does slower than the main one (a cold JIT). Per job RSS = (peak - idle RSS) / jobs, and that over the',
          'model\'s size (the issue\'s bound: 3).',
          '',
          '| policy | --jobs | models ok | wall (s) | models/s | MiB/s | mean s/model (in worker) | CPU s/model | pool CPU fixed (s) | pool CPU s/model | FLOPs saved | peak RSS (MiB) | idle RSS (MiB) | per job (MiB) | per job / model | load (mean / end) |',
          '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
          ...results.map((r) => {
            const job = jobCpu(r.policy);
            const perJob = (r.peakRssMb - r.idle.peakRssMb) / r.jobs;
            const perModel = job === undefined ? '' : ((r.cpuSeconds - r.idle.cpuSeconds) / Math.max(1, r.counts.total) - job).toFixed(2);
            return (
              `| ${r.policy} | ${r.jobs} | ${r.counts.ok}/${r.counts.total} | ${r.seconds.toFixed(1)} | ${(r.counts.ok / r.seconds).toFixed(3)} | ` +
              `${(mb(r.inputBytes) / r.seconds).toFixed(1)} | ${r.meanModelSeconds.toFixed(2)} | ${r.cpuPerModel.toFixed(2)} | ` +
              `${r.idle.cpuSeconds.toFixed(2)} | ${perModel} | ${(r.flopsSaved * 100).toFixed(1)}% | ` +
              `${r.peakRssMb.toFixed(0)} | ${r.idle.peakRssMb.toFixed(0)} | ${perJob.toFixed(0)} | ${(perJob / modelMb(r)).toFixed(2)} | ` +
              `${(r.meanLoad ?? NaN).toFixed(1)} / ${r.loadAverage.toFixed(1)} |`
            );
          }),
          '',
        ]
      : []),
  ];
  // A section appended to the results file: what earlier sessions measured stays.
  const file = values.out!;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const before = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').replace(/\n*$/, '\n\n') : '# dac zoo throughput\n\n';
  fs.writeFileSync(file, before + lines.join('\n'));
  process.stdout.write(lines.join('\n'));
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
