// Loads the Node addon: the prebuilt one shipped for this platform
// (prebuilds/<platform>-<arch>/dac.node, scripts/prebuild.sh), else one built
// here from source (build/Release, by cmake-js or node-gyp: npm run
// build:native). DAC_ADDON_PATH names the only file to try instead.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type {
  Binding,
  RawBackendInfo,
  DacArgs,
  SpatialArgs,
  ChannelArgs,
  DwPwArgs,
  Conv2DArgs,
  GemmArgs,
  CholeskyArgs,
  TriangularSolveArgs,
  SymmetricEigenvaluesArgs,
} from './binding.js';

interface AddonExports {
  info(): RawBackendInfo;
  decomposeDac(a: DacArgs): void;
  decomposeDacBatch(layers: DacArgs[], threads: number): void;
  decomposeSpatial(a: SpatialArgs): void;
  decomposeChannel(a: ChannelArgs): void;
  dwpw(a: DwPwArgs, variant: string | null): void;
  conv2d(a: Conv2DArgs, variant: string | null): void;
  gemm(a: GemmArgs): void;
  cholesky(a: CholeskyArgs): void;
  triangularSolve(a: TriangularSolveArgs): void;
  symmetricEigenvalues(a: SymmetricEigenvaluesArgs): void;
}

const ADDON_FUNCTIONS: (keyof AddonExports)[] = [
  'info',
  'decomposeDac',
  'decomposeDacBatch',
  'decomposeSpatial',
  'decomposeChannel',
  'dwpw',
  'conv2d',
  'gemm',
  'cholesky',
  'triangularSolve',
  'symmetricEigenvalues',
];

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
      // An addon built from older sources lacks newer functions: refuse it whole (WASM takes over) rather than fail mid-plan.
      const missing = ADDON_FUNCTIONS.filter((f) => typeof addon[f] !== 'function');
      if (missing.length > 0) {
        tried.push(`${file}: out of date, no ${missing.join(', ')} (rebuild it: npm run build:native)`);
        continue;
      }
      loadedAddon = file;
      return {
        name: 'native',
        info: () => addon.info(),
        decomposeDac: (a) => addon.decomposeDac(a),
        decomposeDacBatch: (layers, threads) => addon.decomposeDacBatch(layers, threads),
        decomposeSpatial: (a) => addon.decomposeSpatial(a),
        decomposeChannel: (a) => addon.decomposeChannel(a),
        dwpw: (a, variant) => addon.dwpw(a, variant),
        conv2d: (a, variant) => addon.conv2d(a, variant),
        gemm: (a) => addon.gemm(a),
        cholesky: (a) => addon.cholesky(a),
        triangularSolve: (a) => addon.triangularSolve(a),
        symmetricEigenvalues: (a) => addon.symmetricEigenvalues(a),
      };
    } catch (err) {
      tried.push(`${file}: ${(err as Error).message}`);
    }
  }
  throw new Error(`native addon unavailable (${tried.join('; ')})`);
}
