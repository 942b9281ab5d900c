// The WASM backend: the same C++ core compiled by Emscripten (wasm/build.sh),
// instantiated synchronously from bytes read off disk. Arrays are copied into
// module memory for a call and the outputs copied back; that copy is the
// price of WASM's separate memory, paid once per argument.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkContract, OP_NAMES, type Binding, type FieldLayout, type OpLayout, type OpName } from './binding.js';
import { packageRoot } from './native.js';

interface EmscriptenModule {
  HEAPU8: Uint8Array;
  HEAPF32: Float32Array;
  HEAPF64: Float64Array;
  HEAP32: Int32Array;
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  UTF8ToString(ptr: number): string;
  stringToUTF8(s: string, ptr: number, max: number): void;
  lengthBytesUTF8(s: string): number;
  [fn: `_dac_${string}`]: (...args: number[]) => number;
}

type Factory = (moduleArg: Record<string, unknown>) => unknown;

export function wasmDir(): string {
  return process.env.DAC_WASM_DIR ? path.resolve(process.env.DAC_WASM_DIR) : path.join(packageRoot, 'wasm', 'dist');
}

function instantiate(): EmscriptenModule {
  const dir = wasmDir();
  const js = path.join(dir, 'dac_core.js');
  const bin = path.join(dir, 'dac_core.wasm');
  if (!fs.existsSync(js) || !fs.existsSync(bin)) throw new Error(`WASM module missing (${js})`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const factory = require(js) as Factory;
  let abort: string | null = null;
  const moduleArg: Record<string, unknown> = {
    wasmBinary: fs.readFileSync(bin),
    print: () => undefined,
    printErr: () => undefined,
    onAbort: (what: unknown) => {
      abort = String(what);
    },
  };
  // WASM_ASYNC_COMPILATION=0: the module is ready when the factory returns.
  // Emscripten 3.1.6 returns the module itself (a thenable), later versions a Promise.
  factory(moduleArg);
  const mod = moduleArg as unknown as EmscriptenModule;
  if (abort !== null || typeof mod._dac_version !== 'function') {
    throw new Error(`WASM module failed to instantiate${abort ? `: ${abort}` : ''}`);
  }
  return mod;
}

/** Bump allocator over one malloc'd block per call: one free, no leaks on error. */
class Arena {
  private readonly base: number;
  private offset = 0;
  constructor(private readonly mod: EmscriptenModule, bytes: number) {
    this.base = mod._malloc(Math.max(bytes, 16));
    if (this.base === 0) throw new Error(`WASM backend: out of memory allocating ${bytes} bytes`);
  }
  take(bytes: number): number {
    const p = this.base + this.offset;
    this.offset += align(bytes);
    return p;
  }
  free(): void {
    this.mod._free(this.base);
  }
}

/** Rounded up to 16 bytes; plain arithmetic, as sizes may pass 2^31 (where `& ~15` would wrap) before malloc refuses them. */
function align(bytes: number): number {
  return Math.ceil(bytes / 16) * 16;
}

/** A field's value, following its path into nested objects. */
function valueOf(args: object, f: FieldLayout): unknown {
  let v: unknown = args;
  for (const key of f.path) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[key] : undefined;
  return v;
}

/** The same checks as the addon's field reader (native/addon.cc), with the same messages. */
function checkValue(op: OpName, f: FieldLayout, v: unknown): void {
  const fail = (why: string): never => {
    throw new Error(`${op}: '${f.name}' ${why}`);
  };
  switch (f.kind) {
    case 'int':
      if (typeof v !== 'number') fail('must be a number');
      if (!Number.isInteger(v) || (v as number) < -(2 ** 31) || (v as number) > 2 ** 31 - 1) fail('must be a 32-bit integer');
      return;
    case 'number':
      if (typeof v !== 'number') fail('must be a number');
      return;
    case 'bool':
      if (typeof v !== 'boolean') fail('must be a boolean');
      return;
    case 'f32?':
      if (v === null || v === undefined) return;
    // falls through
    case 'f32':
      if (!(v instanceof Float32Array)) fail('must be a Float32Array');
      return;
    case 'f64':
      if (!(v instanceof Float64Array)) fail('must be a Float64Array');
      return;
    case 'name':
      if (v !== null && v !== undefined && typeof v !== 'string') fail('must be a string or null');
  }
}

export function loadWasmBinding(): Binding {
  const mod = instantiate();
  if (typeof mod._dac_op_count !== 'function') throw new Error(`out of date: no op tables (${wasmDir()}; rebuild it: bash wasm/build.sh)`);
  const tables: string[] = [];
  for (let i = 0; i < mod._dac_op_count(); i++) tables.push(mod.UTF8ToString(mod._dac_op(i)));
  const layouts = checkContract(tables);

  /**
   * One op: the params struct and every array written into one arena at the
   * offsets C++ gave (layouts), dac_run, then the out/inout arrays read
   * back; the arena is freed on every path.
   */
  function run(op: OpName, args: object): void {
    const layout: OpLayout = layouts[op];
    const values = layout.fields.map((f) => valueOf(args, f));
    let bytes = align(layout.size);
    layout.fields.forEach((f, i) => {
      checkValue(op, f, values[i]);
      const v = values[i];
      if (v instanceof Float32Array || v instanceof Float64Array) bytes += align(v.byteLength);
      else if (typeof v === 'string') bytes += align(mod.lengthBytesUTF8(v) + 1);
    });
    const arena = new Arena(mod, bytes);
    try {
      const params = arena.take(layout.size);
      mod.HEAPU8.fill(0, params, params + layout.size);
      const readBack: Array<() => void> = [];
      layout.fields.forEach((f, i) => {
        const v = values[i];
        const at = params + f.offset;
        if (v instanceof Float32Array || v instanceof Float64Array) {
          const ptr = v.length > 0 ? arena.take(v.byteLength) : 0;
          const heap = (): Float32Array | Float64Array => (v instanceof Float32Array ? mod.HEAPF32 : mod.HEAPF64);
          const index = ptr / v.BYTES_PER_ELEMENT;
          if (f.dir !== 'out' && v.length > 0) heap().set(v, index);
          if (f.dir !== 'in' && v.length > 0) readBack.push(() => v.set(heap().subarray(index, index + v.length)));
          mod.HEAP32[at >> 2] = ptr;
          // int64 length, little-endian; arrays here are far below 2^31 values.
          mod.HEAP32[(params + f.lengthOffset) >> 2] = v.length;
        } else if (typeof v === 'string') {
          const n = mod.lengthBytesUTF8(v) + 1;
          const ptr = arena.take(n);
          mod.stringToUTF8(v, ptr, n);
          mod.HEAP32[at >> 2] = ptr;
        } else if (f.kind === 'int') {
          mod.HEAP32[at >> 2] = v as number;
        } else if (f.kind === 'number') {
          mod.HEAPF64[at >> 3] = v as number;
        } else if (f.kind === 'bool') {
          mod.HEAPU8[at] = v ? 1 : 0;
        }
      });
      const rc = mod._dac_run(layout.index, params);
      if (rc !== 0) throw new Error(mod.UTF8ToString(mod._dac_last_error()));
      for (const read of readBack) read();
    } catch (err) {
      // A trap (out of memory, abort) surfaces as WebAssembly.RuntimeError.
      const e = err as Error;
      if (e?.name === 'RuntimeError') throw new Error(`WASM backend: ${op} aborted: ${e.message}`);
      throw err;
    } finally {
      arena.free();
    }
  }

  const ops = Object.fromEntries(OP_NAMES.map((op) => [op, (args: object) => run(op, args)])) as Pick<Binding, OpName>;
  return {
    ...ops,
    name: 'wasm',
    info: () => ({
      version: mod.UTF8ToString(mod._dac_version()),
      isa: mod.UTF8ToString(mod._dac_isa()),
      variants: mod.UTF8ToString(mod._dac_variants()),
      hardwareThreads: 1,
    }),
    // One thread: the layers run one after another.
    decomposeDacBatch(layers) {
      for (const layer of layers) ops.decomposeDac(layer);
    },
    // The module's memory only grows: there is nothing to give back.
    mapLargeAllocations: () => false,
  };
}
