// Loads the Node addon: the prebuilt one shipped for this platform
// (prebuilds/<platform>-<arch>/dac.node, scripts/prebuild.sh), else one built
// here from source (build/Release, by cmake-js or node-gyp: npm run
// build:native). DAC_ADDON_PATH names the only file to try instead.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkContract, OP_NAMES, type Binding, type DacArgs, type OpName, type RawBackendInfo } from './binding.js';

/** What the addon exports (native/addon.cc): one function an op of OPS, taking its args object, and these. */
type AddonExports = Omit<Binding, 'name'> & {
  /** native/ops.h's op tables, checked against OPS; absent from addons built before them. */
  contract?(): string[];
};

const ADDON_FUNCTIONS: (keyof AddonExports)[] = ['info', 'decomposeDacBatch', 'mapLargeAllocations', ...OP_NAMES];

/** The package root: two levels up from src/backend or dist/backend. */
export const packageRoot = path.resolve(__dirname, '..', '..');

/** The prebuilt addon's folder name for this process: `linux-x64`, `linux-arm64`, ... */
export function prebuildTarget(): string {
  return `${process.platform}-${process.arch}`;
}

export function addonCandidates(): string[] {
  const env = process.env.DAC_ADDON_PATH;
  if (env) return [path.resolve(env)];
  return [
    path.join(packageRoot, 'prebuilds', prebuildTarget(), 'dac.node'),
    path.join(packageRoot, 'build', 'Release', 'dac_addon.node'),
    path.join(packageRoot, 'build', 'Debug', 'dac_addon.node'),
  ];
}

/** The addon file the native backend was loaded from, once it has loaded. */
export let loadedAddon: string | null = null;

export function loadNativeBinding(): Binding {
  const tried: string[] = [];
  for (const file of addonCandidates()) {
    if (!fs.existsSync(file)) {
      tried.push(`${file}: not built`);
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const addon = require(file) as AddonExports;
      // An addon built from other sources is refused whole (WASM takes over) rather than failing mid-plan.
      const missing = ADDON_FUNCTIONS.filter((f) => typeof addon[f] !== 'function');
      if (missing.length > 0) {
        tried.push(`${file}: out of date, no ${missing.join(', ')} (rebuild it: npm run build:native)`);
        continue;
      }
      if (typeof addon.contract !== 'function') throw new Error('out of date: no op tables');
      checkContract(addon.contract());
      loadedAddon = file;
      const ops = Object.fromEntries(OP_NAMES.map((op) => [op, addon[op]])) as Pick<Binding, OpName>;
      return {
        ...ops,
        name: 'native',
        info: (): RawBackendInfo => addon.info(),
        decomposeDacBatch: (layers: DacArgs[], threads: number) => addon.decomposeDacBatch(layers, threads),
        mapLargeAllocations: (bytes: number) => addon.mapLargeAllocations(bytes),
      };
    } catch (err) {
      const hint = /^out of date/.test((err as Error).message) ? ' (rebuild it: npm run build:native)' : '';
      tried.push(`${file}: ${(err as Error).message}${hint}`);
    }
  }
  throw new Error(`native addon unavailable (${tried.join('; ')})`);
}
