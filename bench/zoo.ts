// `npm run bench:zoo`: throughput and memory of `dac zoo` on a zoo of
// VGG16-sized models (VGG16's 13 convs and a 1000-way head, random weights,
// ~59 MB each), with --jobs 1 and 2.
//
//   npm run bench:zoo -- [--models 200] [--jobs 1,2] [--format both|tfjs|onnx]
//                        [--policy rank4|flops50] [--dir /tmp/x] [--out bench/results/zoo.md]
//                        [--note 'text for the results']
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
import { backendInfo } from '../src/index.js';
import type { ZooSettings } from '../src/zoo/job.js';
import { runZoo } from '../src/zoo/run.js';
import { vgg16Spec, writeOnnxNet, writeTfjsNet } from '../test/fixtures/zoo/synthetic.js';

interface ChildResult {
  jobs: number;
  seconds: number;
  counts: { total: number; ok: number; failed: number };
  inputBytes: number;
  flopsSaved: number;
  peakRssMb: number;
  meanModelSeconds: number;
  /** 1-minute load average at the end: other processes on the machine slow the run down. */
  loadAverage: number;
  /** Mean of the 1-minute load average sampled every 5 s during the run (set by the parent). */
  meanLoad?: number;
}

const POLICIES: Record<string, ZooSettings> = {
  rank4: { method: 'dac', rank: 4 },
  flops50: { method: 'dac', flopsSaved: 0.5 },
};

/** Child mode: one zoo run; prints its result as JSON on the last stdout line. */
async function child(spec: { zoo: string; out: string; jobs: number; policy: string }): Promise<void> {
  const s = await runZoo({ root: spec.zoo, out: spec.out, settings: POLICIES[spec.policy], jobs: spec.jobs, progress: process.stderr });
  const ok = s.models.filter((m) => m.status === 'ok');
  const result: ChildResult = {
    jobs: spec.jobs,
    seconds: s.seconds,
    counts: s.counts,
    inputBytes: s.inputBytes,
    flopsSaved: s.flops.saved,
    // maxRSS is the process's peak resident set in KiB, worker threads included.
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    meanModelSeconds: ok.reduce((a, m) => a + (m.seconds ?? 0), 0) / Math.max(1, ok.length),
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
      policy: { type: 'string', default: 'rank4' },
      dir: { type: 'string' },
      out: { type: 'string', default: path.join(__dirname, 'results', 'zoo.md') },
      keep: { type: 'boolean', default: false },
      note: { type: 'string' },
    },
  });
  if (values.child) return child(JSON.parse(values.child));
  const models = Number(values.models);
  const jobsList = values.jobs!.split(',').map(Number);
  if (!Number.isInteger(models) || models < 1 || jobsList.some((j) => !Number.isInteger(j) || j < 1)) throw new Error('bad --models/--jobs');
  if (!['both', 'tfjs', 'onnx'].includes(values.format!)) throw new Error('--format must be both, tfjs or onnx');
  if (!POLICIES[values.policy!]) throw new Error(`--policy must be one of ${Object.keys(POLICIES).join(', ')}`);

  const dir = values.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'dac-bench-zoo-'));
  const t0 = performance.now();
  makeZoo(dir, models, values.format!);
  process.stderr.write(`zoo of ${models} models in ${dir} (generated in ${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);

  const results: ChildResult[] = [];
  try {
    for (const jobs of jobsList) {
      const out = path.join(dir, `out-j${jobs}`);
      fs.rmSync(out, { recursive: true, force: true });
      process.stderr.write(`--jobs ${jobs}\n`);
      results.push(await runChild({ zoo: path.join(dir, 'zoo'), out, jobs, policy: values.policy }));
      fs.rmSync(out, { recursive: true, force: true });
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
    `- policy: \`${JSON.stringify(POLICIES[values.policy!])}\``,
    ...(values.note ? [`- note: ${values.note}`] : []),
    '- each run: fresh output folder, its own process; peak RSS = the process maximum (main thread and all workers);',
    `  load = 1-minute load average, mean over the run (sampled every 5 s) / at its end (${os.availableParallelism()} cores: above that, other processes competed)`,
    '',
    '| --jobs | models ok | wall (s) | models/s | MiB/s | mean s/model (in worker) | FLOPs saved | peak RSS (MiB) | load (mean / end) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...results.map(
      (r) =>
        `| ${r.jobs} | ${r.counts.ok}/${r.counts.total} | ${r.seconds.toFixed(1)} | ${(r.counts.ok / r.seconds).toFixed(3)} | ` +
        `${(mb(r.inputBytes) / r.seconds).toFixed(1)} | ${r.meanModelSeconds.toFixed(2)} | ${(r.flopsSaved * 100).toFixed(1)}% | ` +
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
