// The WASM backend: the same C++ core compiled by Emscripten (wasm/build.sh),
// instantiated synchronously from bytes read off disk. Arrays are copied into
// module memory for a call and the outputs copied back; that copy is the
// price of WASM's separate memory, paid once per argument.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Binding, ConvGeometry, RawBackendInfo } from './binding.js';
import { packageRoot } from './native.js';

interface EmscriptenModule {
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
  private base = 0;
  private offset = 0;
  constructor(private readonly mod: EmscriptenModule, bytes: number) {
    this.base = mod._malloc(Math.max(bytes, 16));
    if (this.base === 0) throw new Error(`WASM backend: out of memory allocating ${bytes} bytes`);
  }
  private take(bytes: number): number {
    const p = this.base + this.offset;
    this.offset += (bytes + 15) & ~15;
    return p;
  }
  floats(src: Float32Array | null, length = src ? src.length : 0): number {
    if (length === 0) return 0;
    const p = this.take(length * 4);
    if (src) this.mod.HEAPF32.set(src, p >> 2);
    return p;
  }
  doubles(src: Float64Array): number {
    if (src.length === 0) return 0;
    const p = this.take(src.length * 8);
    this.mod.HEAPF64.set(src, p >> 3);
    return p;
  }
  ints(values: number[]): number {
    const p = this.take(values.length * 4);
    this.mod.HEAP32.set(values, p >> 2);
    return p;
  }
  string(s: string | null): number {
    if (!s) return 0;
    const n = this.mod.lengthBytesUTF8(s) + 1;
    const p = this.take(n);
    this.mod.stringToUTF8(s, p, n);
    return p;
  }
  read(ptr: number, into: Float32Array): void {
    if (into.length > 0) into.set(this.mod.HEAPF32.subarray(ptr >> 2, (ptr >> 2) + into.length));
  }
  readDoubles(ptr: number, into: Float64Array): void {
    if (into.length > 0) into.set(this.mod.HEAPF64.subarray(ptr >> 3, (ptr >> 3) + into.length));
  }
  free(): void {
    this.mod._free(this.base);
  }
}

function arenaBytes(...arrays: Array<Float32Array | null | number>): number {
  let bytes = 256;
  for (const a of arrays) {
    const n = typeof a === 'number' ? a : a ? a.length : 0;
    bytes += ((n * 4 + 15) & ~15) + 16;
  }
  return bytes;
}

/** Arena size for Float64Arrays (counted as two floats a value). */
function doubleBytes(...arrays: Float64Array[]): number {
  return arenaBytes(...arrays.map((a) => a.length * 2));
}

function geometryBlock(g: ConvGeometry): number[] {
  return [
    g.batch, g.inH, g.inW, g.inC, g.kh, g.kw, g.strideH, g.strideW, g.dilationH, g.dilationW,
    g.padTop, g.padLeft, g.padBottom, g.padRight, g.outH, g.outW, g.outC,
  ];
}

export function loadWasmBinding(): Binding {
  const mod = instantiate();

  // Runs one core function; outputs are read back before the arena is freed,
  // and the arena is freed on every path.
  function invoke(fn: string, arena: Arena, args: number[], readOutputs: () => void): void {
    try {
      const rc = mod[`_dac_${fn}`](...args);
      if (rc !== 0) throw new Error(mod.UTF8ToString(mod._dac_last_error()));
      readOutputs();
    } catch (err) {
      // A trap (out of memory, abort) surfaces as WebAssembly.RuntimeError.
      const e = err as Error;
      if (e?.name === 'RuntimeError') throw new Error(`WASM backend: ${fn} aborted: ${e.message}`);
      throw err;
    } finally {
      arena.free();
    }
  }

  const binding: Binding = {
    name: 'wasm',
    info(): RawBackendInfo {
      return {
        version: mod.UTF8ToString(mod._dac_version()),
        isa: mod._dac_simd128() ? 'wasm32 simd128' : 'wasm32',
        dwpwVariant: mod.UTF8ToString(mod._dac_dwpw_variant()),
        dwpwVariants: mod.UTF8ToString(mod._dac_dwpw_variants()),
        conv2dVariant: mod.UTF8ToString(mod._dac_conv2d_variant()),
        conv2dVariants: mod.UTF8ToString(mod._dac_conv2d_variants()),
        hardwareThreads: 1,
      };
    },
    decomposeDac(a) {
      const arena = new Arena(mod, arenaBytes(a.weights, a.depthwise, a.pointwise, a.singular, 8));
      const block = arena.ints([a.layout, a.n, a.c, a.kh, a.kw]);
      const w = arena.floats(a.weights);
      const dw = arena.floats(null, a.depthwise.length);
      const pw = arena.floats(null, a.pointwise.length);
      const sv = arena.floats(null, a.singular ? a.singular.length : 0);
      invoke('decompose_dac', arena, [block, w, a.weights.length, a.rank, dw, a.depthwise.length, pw,
        a.pointwise.length, sv, a.singular ? a.singular.length : 0], () => {
        arena.read(dw, a.depthwise);
        arena.read(pw, a.pointwise);
        if (a.singular) arena.read(sv, a.singular);
      });
    },
    decomposeDacBatch(layers) {
      for (const layer of layers) binding.decomposeDac(layer);
    },
    decomposeSpatial(a) {
      const arena = new Arena(mod, arenaBytes(a.weights, a.vertical, a.horizontal, a.singular, 8));
      const block = arena.ints([a.layout, a.n, a.c, a.kh, a.kw]);
      const w = arena.floats(a.weights);
      const v = arena.floats(null, a.vertical.length);
      const h = arena.floats(null, a.horizontal.length);
      const sv = arena.floats(null, a.singular ? a.singular.length : 0);
      invoke('decompose_spatial', arena, [block, w, a.weights.length, a.width, v, a.vertical.length, h,
        a.horizontal.length, sv, a.singular ? a.singular.length : 0], () => {
        arena.read(v, a.vertical);
        arena.read(h, a.horizontal);
        if (a.singular) arena.read(sv, a.singular);
      });
    },
    decomposeChannel(a) {
      const arena = new Arena(mod, arenaBytes(a.weights, a.first, a.second, a.singular, 8));
      const block = arena.ints([a.layout, a.n, a.c, a.kh, a.kw]);
      const w = arena.floats(a.weights);
      const f = arena.floats(null, a.first.length);
      const s = arena.floats(null, a.second.length);
      const sv = arena.floats(null, a.singular ? a.singular.length : 0);
      invoke('decompose_channel', arena, [block, w, a.weights.length, a.width, f, a.first.length, s,
        a.second.length, sv, a.singular ? a.singular.length : 0], () => {
        arena.read(f, a.first);
        arena.read(s, a.second);
        if (a.singular) arena.read(sv, a.singular);
      });
    },
    dwpw(a, variant) {
      const arena = new Arena(mod, arenaBytes(a.input, a.depthwise, a.pointwise, a.bias, a.output, 64));
      const g = arena.ints(geometryBlock(a.geometry));
      const input = arena.floats(a.input);
      const dw = arena.floats(a.depthwise);
      const pw = arena.floats(a.pointwise);
      const bias = arena.floats(a.bias);
      const out = arena.floats(null, a.output.length);
      const v = arena.string(variant);
      invoke('dwpw', arena, [g, a.rank, input, a.input.length, dw, a.depthwise.length, pw, a.pointwise.length,
        bias, a.bias ? a.bias.length : 0, out, a.output.length, a.activation, v], () => arena.read(out, a.output));
    },
    conv2d(a, variant) {
      const arena = new Arena(mod, arenaBytes(a.input, a.weights, a.bias, a.output, 64));
      const g = arena.ints(geometryBlock(a.geometry));
      const input = arena.floats(a.input);
      const w = arena.floats(a.weights);
      const bias = arena.floats(a.bias);
      const out = arena.floats(null, a.output.length);
      const v = arena.string(variant);
      invoke('conv2d', arena, [g, input, a.input.length, w, a.weights.length, bias, a.bias ? a.bias.length : 0,
        out, a.output.length, a.activation, v], () => arena.read(out, a.output));
    },
    gemm(a) {
      const arena = new Arena(mod, doubleBytes(a.a, a.b, a.c) + arenaBytes(8));
      const dims = arena.ints([a.m, a.n, a.k, a.transA ? 1 : 0, a.transB ? 1 : 0]);
      const pa = arena.doubles(a.a);
      const pb = arena.doubles(a.b);
      const pc = arena.doubles(a.c);
      invoke('gemm', arena, [dims, pa, a.a.length, pb, a.b.length, pc, a.c.length], () => arena.readDoubles(pc, a.c));
    },
    cholesky(a) {
      const arena = new Arena(mod, doubleBytes(a.a));
      const pa = arena.doubles(a.a);
      invoke('cholesky', arena, [a.m, pa, a.a.length, a.ridge], () => arena.readDoubles(pa, a.a));
    },
    triangularSolve(a) {
      const arena = new Arena(mod, doubleBytes(a.l, a.b) + arenaBytes(8));
      const dims = arena.ints([a.m, a.k, a.rows, a.transpose ? 1 : 0]);
      const pl = arena.doubles(a.l);
      const pb = arena.doubles(a.b);
      invoke('triangular_solve', arena, [dims, pl, a.l.length, pb, a.b.length], () => arena.readDoubles(pb, a.b));
    },
    symmetricEigenvalues(a) {
      const arena = new Arena(mod, doubleBytes(a.a, a.values));
      const pa = arena.doubles(a.a);
      const pv = arena.doubles(a.values);
      invoke('symmetric_eigenvalues', arena, [a.m, pa, a.a.length, pv, a.values.length], () => arena.readDoubles(pv, a.values));
    },
  };

  return binding;
}
