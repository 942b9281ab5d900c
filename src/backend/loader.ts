// Backend registry: native addon first, then WASM. A forced backend (option
// or DAC_BACKEND) that cannot load is an error; otherwise every failure is
// collected so a user who ends up on WASM (or on nothing) sees why.
import type { Binding, BackendName } from './binding.js';
import { Backend, type BackendInfo } from './backend.js';
import { loadedAddon, loadNativeBinding } from './native.js';
import { loadWasmBinding } from './wasm.js';
import { DacError } from '../errors.js';

const registry: Record<BackendName, () => Binding> = {
  native: loadNativeBinding,
  wasm: loadWasmBinding,
};

export const BACKEND_ORDER: readonly BackendName[] = ['native', 'wasm'];

const loaded = new Map<BackendName, Backend | Error>();

function load(name: BackendName): Backend | Error {
  let entry = loaded.get(name);
  if (!entry) {
    try {
      entry = new Backend(registry[name]());
    } catch (err) {
      entry = err instanceof Error ? err : new Error(String(err));
    }
    loaded.set(name, entry);
  }
  return entry;
}

function checkName(name: unknown, source: string): BackendName {
  if (name === 'native' || name === 'wasm') return name;
  throw new DacError('EINVAL', `${source} must be 'native' or 'wasm', got '${String(name)}'`);
}

/** The backend DAC_BACKEND asks for, if set. */
function forcedByEnv(): BackendName | null {
  const v = process.env.DAC_BACKEND;
  return v === undefined || v === '' ? null : checkName(v, 'DAC_BACKEND');
}

/** Whether the WASM fallback note was printed: once a process; DAC_NO_FALLBACK_NOTE=1 silences it. */
let noted = false;

/** The one line saying why WASM runs although native comes first. */
function fallbackReason(failures: string[]): string {
  return `dac-conv: using the WASM backend (slower than native): ${failures.join('; ')}. ` +
    'Build the addon from source with `npm run build:native` in the package folder; DAC_NO_FALLBACK_NOTE=1 hides this note.';
}

/**
 * The backend to use: `name` if given, else DAC_BACKEND if set, else the
 * native addon, else WASM. Throws one error listing every failure. The first
 * time WASM is chosen because native failed, one line on stderr says why.
 */
export function getBackend(name?: BackendName): Backend {
  const forced = name !== undefined ? checkName(name, 'backend') : forcedByEnv();
  if (forced) {
    const b = load(forced);
    if (b instanceof Error) throw new DacError('ENOBACKEND', `backend '${forced}' is unavailable: ${b.message}`);
    return b;
  }
  const failures: string[] = [];
  for (const n of BACKEND_ORDER) {
    const b = load(n);
    if (!(b instanceof Error)) {
      if (failures.length > 0 && !noted && process.env.DAC_NO_FALLBACK_NOTE !== '1') {
        noted = true;
        process.stderr.write(`${fallbackReason(failures)}\n`);
      }
      return b;
    }
    failures.push(`${n}: ${b.message}`);
  }
  throw new DacError('ENOBACKEND', `no dac-conv backend could be loaded (${failures.join('; ')})`);
}

/** Every backend that loads on this machine (tests run their suite over each). */
export function availableBackends(): Backend[] {
  return BACKEND_ORDER.map(load).filter((b): b is Backend => !(b instanceof Error));
}

export interface BackendReport extends BackendInfo {
  /** Why a backend earlier in the order was not used, if one was skipped. */
  skipped: Array<{ backend: BackendName; reason: string }>;
  /** The native addon's file (a shipped prebuild or a local build); null on WASM. */
  addon: string | null;
  /** True when the native addon is the one shipped in prebuilds/. */
  prebuilt: boolean;
  /** When WASM runs as a fallback (not asked for): the one-line reason; else null. */
  fallback: string | null;
}

/** Which backend runs, its ISA and kernels, and why any earlier backend was skipped. */
export function backendInfo(name?: BackendName): BackendReport {
  const b = getBackend(name);
  const skipped: BackendReport['skipped'] = [];
  for (const n of BACKEND_ORDER) {
    if (n === b.name) break;
    const e = load(n);
    skipped.push({ backend: n, reason: e instanceof Error ? e.message : 'not selected (forced)' });
  }
  const addon = b.name === 'native' ? loadedAddon : null;
  const asked = name !== undefined || forcedByEnv() !== null;
  const fallback = b.name === 'wasm' && !asked ? fallbackReason(skipped.map((s) => `${s.backend}: ${s.reason}`)) : null;
  return { ...b.info(), skipped, addon, prebuilt: addon !== null && /[\\/]prebuilds[\\/]/.test(addon), fallback };
}
