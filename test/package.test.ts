// The package as a user installs it: `npm pack` a copy of the tree, check
// what the tarball holds, install it into fresh CommonJS, ESM and TypeScript
// projects with a PATH that has node and npm but no compiler or cmake, and
// use it there: the native backend comes from the prebuild, the whole-model
// API loads, plans, decomposes, saves (to paths and to bytes) and reports,
// its types check under nodenext, bundler and node10, and the bins run.
// Slow (a TypeScript build, three installs, four tsc runs): `npm run test:package`.
import t from 'tap';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
const target = `${process.platform}-${process.arch}`;
const hasPrebuild = fs.existsSync(path.join(root, 'prebuilds', target, 'dac.node'));
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'dac-package-'));
t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));

/** Only node, npm, npx and sh: no cc, c++, make or cmake. */
const bin = path.join(work, 'bin');
fs.mkdirSync(bin);
for (const tool of ['node', 'npm', 'npx', 'sh']) {
  const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
  fs.symlinkSync(tool === 'node' ? process.execPath : fs.realpathSync(found), path.join(bin, tool));
}
/** The environment of a user's shell: no npm_* variables of the npm running this test, no DAC_* overrides. */
const env: NodeJS.ProcessEnv = { HOME: process.env.HOME, PATH: bin, TMPDIR: os.tmpdir() };
if (process.env.npm_config_cache) env.npm_config_cache = process.env.npm_config_cache;

function sh(cmd: string, args: string[], opts: SpawnSyncOptions & { cwd: string }): { status: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  return { status: r.status, out: String(r.stdout ?? ''), err: String(r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

/** Tracked and untracked-but-not-ignored files the package is built from. */
function sourceFiles(): string[] {
  const r = spawnSync('git', ['ls-files', '-co', '--exclude-standard'], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ls-files failed: ${r.stderr}`);
  const keep = /^(src|native|wasm|demo|prebuilds|scripts|gyp)\/|^[^/]+$/;
  return r.stdout.split('\n').filter((f) => f && keep.test(f) && fs.existsSync(path.join(root, f)));
}

let tarball = '';
let packed: { files: { path: string }[] } | null = null;

t.test('npm pack: what the tarball holds', async (t) => {
  // A copy, so packing (which rebuilds dist/) leaves the working tree alone.
  const copy = path.join(work, 'src');
  for (const f of sourceFiles()) {
    fs.mkdirSync(path.dirname(path.join(copy, f)), { recursive: true });
    fs.copyFileSync(path.join(root, f), path.join(copy, f));
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(copy, 'node_modules'));
  const r = spawnSync('npm', ['pack', '--json', '--pack-destination', work], {
    cwd: copy,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  t.equal(r.status, 0, `npm pack: ${r.stderr}`);
  if (r.status !== 0) return;
  packed = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')))[0];
  tarball = path.join(work, (packed as unknown as { filename: string }).filename);
  const files = packed!.files.map((f) => f.path);
  for (const need of [
    'LICENSE',
    'README.md',
    'package.json',
    'dist/index.js',
    'dist/index.mjs',
    'dist/index.d.ts',
    'dist/index.d.mts',
    'dist/api.d.ts',
    'dist/cli/main.js',
    'dist/formats/tfjs/io.js',
    'wasm/dist/dac_core.js',
    'wasm/dist/dac_core.wasm',
    'prebuilds/linux-x64/dac.node',
    'prebuilds/linux-arm64/dac.node',
    'demo/fashion-vgg/model.json',
  ]) {
    t.ok(files.includes(need), `ships ${need}`);
  }
  const forbidden = files.filter((f) =>
    /^(test|test-real|bench|docs|notes|src|native\/tests|build|\.ci)\//.test(f) ||
    /\.map$/.test(f) ||
    /^scripts\/(test-|prebuild)/.test(f) ||
    /^tsconfig/.test(f),
  );
  t.same(forbidden, [], 'no tests, test or prebuild scripts, sources or source maps');
  const demoBytes = packed!.files.filter((f) => f.path.startsWith('demo/')).reduce((a, f) => a + (f as unknown as { size: number }).size, 0);
  t.ok(demoBytes < 5 * 1024 * 1024, `demo data ${demoBytes} bytes`);

  const pkg = JSON.parse(fs.readFileSync(path.join(copy, 'package.json'), 'utf8'));
  for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) t.notOk(pkg.scripts?.[hook], `no ${hook} script`);
  t.equal(pkg.gypfile, false, 'npm does not run node-gyp on binding.gyp at install');
  // npm infers an install script (`node-gyp rebuild`) from a binding.gyp at the package root, and npm 11
  // lists it for allow-listing even with gypfile false: the source build's gyp file lives in gyp/.
  t.notOk(files.includes('binding.gyp'), 'no binding.gyp at the package root');
  t.ok(files.includes('gyp/binding.gyp'), 'ships gyp/binding.gyp for source builds on request');
  t.same(Object.keys(pkg.bin).sort(), ['dac', 'dac-conv']);
  t.notOk(pkg.dependencies?.['cmake-js'], 'cmake-js is a devDependency');
  t.equal(pkg.license, 'MIT');
});

t.test('the test PATH has no compiler', async (t) => {
  for (const tool of ['cc', 'c++', 'gcc', 'g++', 'make', 'cmake']) {
    t.not(sh('sh', ['-c', `command -v ${tool}`], { cwd: work }).status, 0, `${tool} is not on PATH`);
  }
});

/** A fresh project with the tarball installed (from the npm cache when it can; no scripts of ours run). */
function project(t: tap.Test, name: string, pkg: Record<string, unknown>): string | null {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, version: '1.0.0', private: true, ...pkg }));
  const r = sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: dir });
  t.equal(r.status, 0, `npm install: ${r.err}`);
  if (r.status !== 0) return null;
  t.notMatch(r.err, /dac-conv@[^ ]* \(/, 'npm lists no install script of dac-conv');
  t.notOk(fs.existsSync(path.join(dir, 'node_modules', 'dac-conv', 'build')), 'nothing was built at install');
  return dir;
}

const demoModel = path.join('node_modules', 'dac-conv', 'demo', 'fashion-vgg');

t.test('CommonJS: native backend from the prebuild, whole-model API, save to a path and to bytes', async (t) => {
  if (!tarball) return t.fail('no tarball');
  const dir = project(t, 'cjs', { type: 'commonjs' });
  if (!dir) return;
  fs.writeFileSync(
    path.join(dir, 'main.js'),
    `const m = require('dac-conv');
const { fileHandler } = require('dac-conv/tfjs-io');
(async () => {
  const model = await m.loadModel(${JSON.stringify(demoModel)});
  const plan = m.planDecomposition(model, { method: 'dac', rank: 2 });
  const result = m.decomposeModel(model, { method: 'dac', rank: 2 });
  await m.saveModel(result.model, 'out');
  const files = m.modelToBytes(result.model);
  const again = await m.loadModelFromBytes(files, { name: 'again' });
  const artifacts = await fileHandler('out').load();
  console.log(JSON.stringify({
    info: m.backendInfo(),
    planned: plan.layers.filter((l) => l.method === 'dac').length,
    before: m.modelReport(model).total.macs,
    after: m.modelReport(result.model).total.macs,
    report: result.report.flops,
    written: require('fs').readdirSync('out').length,
    files: Object.keys(files).length,
    again: again.convs.length,
    handlerSpecs: artifacts.weightSpecs.length,
  }));
})().catch((e) => { console.error(e); process.exit(1); });
`,
  );
  const r = sh('node', ['main.js'], { cwd: dir });
  t.equal(r.status, 0, r.err);
  if (r.status !== 0) return;
  const o = JSON.parse(r.out);
  if (hasPrebuild) {
    t.equal(o.info.backend, 'native');
    t.equal(o.info.prebuilt, true);
    t.equal(o.info.addon, path.join(fs.realpathSync(dir), 'node_modules', 'dac-conv', 'prebuilds', target, 'dac.node'));
  }
  t.equal(r.err, '', 'nothing on stderr (no fallback note)');
  t.equal(o.planned, 13, 'all 13 convs planned');
  t.ok(o.after < o.before / 2, `MACs ${o.before} -> ${o.after}`);
  t.same(o.report, { before: o.before, after: o.after });
  t.ok(o.written >= 2, 'model.json and a shard written');
  t.equal(o.again, 26, 'the bytes load back: 13 convs became 26');
  t.ok(o.handlerSpecs > 0, 'the TF.js file IO handler reads the saved model');
});

t.test('ESM: named imports, one instance with require(), ONNX from and to bytes', async (t) => {
  if (!tarball) return t.fail('no tarball');
  const dir = project(t, 'esm', { type: 'module' });
  if (!dir) return;
  fs.copyFileSync(path.join(root, 'test', 'fixtures', 'fashion-vgg.onnx'), path.join(dir, 'vgg.onnx'));
  fs.writeFileSync(
    path.join(dir, 'main.js'),
    `import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { backendInfo, decomposeModel, getBackend, loadModelFromBytes, modelToBytes, saveModel } from 'dac-conv';
import { fileHandler } from 'dac-conv/tfjs-io';
const cjs = createRequire(import.meta.url)('dac-conv');
const model = await loadModelFromBytes(readFileSync('vgg.onnx'), { name: 'vgg' });
const result = decomposeModel(model, { method: 'dac', flopsSaved: 0.5 });
const bytes = modelToBytes(result.model);
await saveModel(result.model, 'out/vgg-dac.onnx');
const again = await loadModelFromBytes(bytes);
console.log(JSON.stringify({
  backend: backendInfo().backend,
  sameInstance: cjs.getBackend === getBackend,
  handler: typeof fileHandler,
  name: model.name,
  bytes: bytes.length,
  saved: readFileSync('out/vgg-dac.onnx').length,
  convs: again.convs.length,
  saving: 1 - result.report.flops.after / result.report.flops.before,
}));
`,
  );
  const r = sh('node', ['main.js'], { cwd: dir });
  t.equal(r.status, 0, r.err);
  if (r.status !== 0) return;
  const o = JSON.parse(r.out);
  if (hasPrebuild) t.equal(o.backend, 'native');
  t.equal(o.sameInstance, true, 'import and require share one library instance');
  t.equal(o.handler, 'function');
  t.equal(o.saved, o.bytes, 'saveModel writes what modelToBytes returns');
  t.ok(o.convs > 13, 'decomposed convs load back');
  t.ok(o.saving >= 0.5, `saves ${o.saving}`);
});

t.test('TypeScript: the API is typed under nodenext, bundler and node10', async (t) => {
  if (!tarball) return t.fail('no tarball');
  const dir = project(t, 'ts', { type: 'module' });
  if (!dir) return;
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  fs.writeFileSync(
    path.join(dir, 'main.ts'),
    `import {
  backendInfo, decomposeModel, loadModel, modelReport, modelToBytes, planDecomposition, saveModel,
  type BackendReport, type DecomposeResult, type LoadedModel, type ModelPlan, type Report,
} from 'dac-conv';

export async function run(dir: string, out: string): Promise<{ report: Report; name: string; macs: number; layers: number; files: string[] }> {
  const model: LoadedModel = await loadModel(dir);
  const plan: ModelPlan = planDecomposition(model, { method: 'auto', flopsSaved: 0.5 });
  const result: DecomposeResult = decomposeModel(model, { method: 'dac', rank: 2 });
  await saveModel(result.model, out);
  const info: BackendReport = backendInfo();
  const name: 'native' | 'wasm' = info.backend;
  const macs: number = modelReport(result.model).total.macs;
  const bytes = modelToBytes(result.model);
  return { report: result.report, name, macs, layers: plan.layers.length, files: bytes instanceof Uint8Array ? [] : Object.keys(bytes) };
}

export function notCalled(model: LoadedModel): void {
  // @ts-expect-error: the method is checked
  decomposeModel(model, { method: 'svd' });
}
`,
  );
  fs.writeFileSync(
    path.join(dir, 'run.mjs'),
    `import { run } from './build/main.js';\nconsole.log(JSON.stringify(await run(${JSON.stringify(demoModel)}, 'out')));\n`,
  );
  const base = { strict: true, skipLibCheck: false, target: 'ES2022', lib: ['ES2022'], types: [] as string[] };
  const configs: Record<string, Record<string, unknown>> = {
    nodenext: { ...base, module: 'nodenext', moduleResolution: 'nodenext', outDir: 'build' },
    bundler: { ...base, module: 'esnext', moduleResolution: 'bundler', noEmit: true },
    node10: { ...base, module: 'commonjs', moduleResolution: 'node10', noEmit: true },
  };
  for (const [mode, compilerOptions] of Object.entries(configs)) {
    fs.writeFileSync(path.join(dir, `tsconfig.${mode}.json`), JSON.stringify({ compilerOptions, files: ['main.ts'] }));
    const r = sh('node', [tsc, '-p', `tsconfig.${mode}.json`], { cwd: dir });
    t.equal(r.status, 0, `tsc (${mode}): ${r.out}${r.err}`);
  }
  // node10 ignores "exports": the subpath's types come from typesVersions (its d.ts names tfjs, an optional peer, hence skipLibCheck).
  fs.writeFileSync(path.join(dir, 'io.ts'), `import { fileHandler } from 'dac-conv/tfjs-io';\nexport const h: (path: string) => unknown = fileHandler;\n`);
  fs.writeFileSync(
    path.join(dir, 'tsconfig.io.json'),
    JSON.stringify({ compilerOptions: { ...configs.node10, skipLibCheck: true }, files: ['io.ts'] }),
  );
  const io = sh('node', [tsc, '-p', 'tsconfig.io.json'], { cwd: dir });
  t.equal(io.status, 0, `tsc (node10, dac-conv/tfjs-io): ${io.out}${io.err}`);

  const r = sh('node', ['run.mjs'], { cwd: dir });
  t.equal(r.status, 0, r.err);
  if (r.status === 0) {
    const o = JSON.parse(r.out);
    if (hasPrebuild) t.equal(o.name, 'native');
    t.equal(o.layers, 13);
    t.ok(o.files.includes('model.json') && o.files.length === 2, `model.json and a shard: ${o.files}`);
    t.equal(o.report.flops.after, o.macs);
    t.ok(fs.existsSync(path.join(dir, 'out', 'model.json')), 'the compiled TypeScript wrote the model');
  }
});

t.test('bins: dac-conv and its alias dac; the demo says what it needs', async (t) => {
  const dir = path.join(work, 'cjs');
  if (!fs.existsSync(path.join(dir, 'node_modules'))) return t.fail('no CJS project');
  for (const name of ['dac-conv', 'dac']) {
    const r = sh('npx', ['--offline', '--no-install', name, '--help'], { cwd: dir });
    t.equal(r.status, 0, `npx ${name} --help: ${r.err}`);
    t.match(r.out + r.err, /decompose/);
  }
  // The consumer has no TF.js (an optional peer): the demo names the package to install.
  const demo = sh('npx', ['--offline', '--no-install', 'dac-conv', 'demo'], { cwd: dir });
  t.not(demo.status, 0);
  t.match(demo.err, /npm install @tensorflow\/tfjs/);
});
