// Reading and writing ONNX tensors and attributes.
import * as os from 'node:os';
import { DacError, type ErrorContext } from '../../errors.js';
import { floatToHalf, halfToFloat } from '../float16.js';
import { AttrType, create, DataType, toNumber, type AttributeProto, type NodeProto, type TensorProto } from './schema.js';

const LITTLE_ENDIAN = os.endianness() === 'LE';

export function tensorDims(t: TensorProto): number[] {
  return t.dims.map(toNumber);
}

function elementCount(dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

function hasRaw(t: TensorProto): t is TensorProto & { raw_data: Uint8Array } {
  return t.raw_data instanceof Uint8Array && t.raw_data.length > 0;
}

function checkRawLength(t: TensorProto, count: number, bytesPer: number, ctx: ErrorContext): void {
  if (t.raw_data!.length !== count * bytesPer) {
    throw new DacError(
      'EFORMAT',
      `initializer ${t.name} has ${t.raw_data!.length} bytes of raw_data, its dims [${tensorDims(t).join(', ')}] need ${count * bytesPer}`,
      ctx,
    );
  }
}

/**
 * A float tensor's values as float32 (FLOAT, FLOAT16 or DOUBLE; raw_data or
 * the typed fields). Little-endian FLOAT raw_data at an aligned offset comes
 * back as a view of it, not a copy: writing to the result writes the tensor.
 */
export function tensorFloats(t: TensorProto, ctx: ErrorContext): Float32Array {
  const dims = tensorDims(t);
  const count = elementCount(dims);
  const where = { ...ctx, field: t.name ?? ctx.field };
  switch (t.data_type) {
    case DataType.FLOAT: {
      if (hasRaw(t)) {
        checkRawLength(t, count, 4, where);
        const raw = t.raw_data;
        // A view of the file's bytes where they are aligned (no copy of the weights); a copy where not.
        if (LITTLE_ENDIAN) return raw.byteOffset % 4 === 0 ? new Float32Array(raw.buffer, raw.byteOffset, count) : new Float32Array(new Uint8Array(raw).buffer, 0, count);
        const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        return Float32Array.from({ length: count }, (_, i) => view.getFloat32(4 * i, true));
      }
      if (t.float_data.length !== count) {
        throw new DacError('EFORMAT', `initializer ${t.name} has ${t.float_data.length} floats, its dims need ${count}`, where);
      }
      return Float32Array.from(t.float_data);
    }
    case DataType.DOUBLE: {
      if (hasRaw(t)) {
        checkRawLength(t, count, 8, where);
        const view = new DataView(t.raw_data.buffer, t.raw_data.byteOffset, t.raw_data.byteLength);
        const out = new Float32Array(count);
        for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, true);
        return out;
      }
      if (t.double_data.length !== count) {
        throw new DacError('EFORMAT', `initializer ${t.name} has ${t.double_data.length} doubles, its dims need ${count}`, where);
      }
      return Float32Array.from(t.double_data);
    }
    case DataType.FLOAT16: {
      if (hasRaw(t)) {
        checkRawLength(t, count, 2, where);
        const view = new DataView(t.raw_data.buffer, t.raw_data.byteOffset, t.raw_data.byteLength);
        const out = new Float32Array(count);
        for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
        return out;
      }
      if (t.int32_data.length !== count) {
        throw new DacError('EFORMAT', `initializer ${t.name} has ${t.int32_data.length} values, its dims need ${count}`, where);
      }
      return Float32Array.from(t.int32_data, (v) => halfToFloat(v & 0xffff));
    }
    default:
      throw new DacError('EFORMAT', `initializer ${t.name} has data type ${t.data_type}, expected a float type`, where);
  }
}

/** An integer tensor's values (INT64 or INT32), e.g. a Reshape target or Pad amounts. */
export function tensorInts(t: TensorProto, ctx: ErrorContext): number[] {
  const count = elementCount(tensorDims(t));
  const where = { ...ctx, field: t.name ?? ctx.field };
  if (t.data_type === DataType.INT64) {
    if (hasRaw(t)) {
      checkRawLength(t, count, 8, where);
      const view = new DataView(t.raw_data.buffer, t.raw_data.byteOffset, t.raw_data.byteLength);
      return Array.from({ length: count }, (_, i) => Number(view.getBigInt64(8 * i, true)));
    }
    return t.int64_data.map(toNumber);
  }
  if (t.data_type === DataType.INT32) {
    if (hasRaw(t)) {
      checkRawLength(t, count, 4, where);
      const view = new DataView(t.raw_data.buffer, t.raw_data.byteOffset, t.raw_data.byteLength);
      return Array.from({ length: count }, (_, i) => view.getInt32(4 * i, true));
    }
    return t.int32_data.slice();
  }
  throw new DacError('EFORMAT', `tensor ${t.name} has data type ${t.data_type}, expected int64 or int32`, where);
}

/** A new float32 initializer stored as raw_data (little-endian). */
export function floatTensor(name: string, dims: number[], values: Float32Array): TensorProto {
  return typedTensor(name, dims, values, DataType.FLOAT);
}

/** Float data types a conv's weights can be stored or computed in. */
export const FLOAT_TYPES: ReadonlySet<number> = new Set([DataType.FLOAT, DataType.FLOAT16, DataType.DOUBLE]);

export function dataTypeName(t: number): string {
  return t === DataType.FLOAT16 ? 'float16' : t === DataType.DOUBLE ? 'float64' : t === DataType.FLOAT ? 'float32' : `type ${t}`;
}

/**
 * A new initializer of FLOAT, FLOAT16 or DOUBLE holding `values` (float32),
 * stored as raw_data (little-endian). FLOAT on a little-endian machine holds
 * `values` themselves (a view, not a copy).
 */
export function typedTensor(name: string, dims: number[], values: Float32Array, dataType: number): TensorProto {
  let raw: Uint8Array;
  if (dataType === DataType.FLOAT && LITTLE_ENDIAN) {
    raw = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  } else if (dataType === DataType.FLOAT16) {
    const buf = Buffer.alloc(values.length * 2);
    for (let i = 0; i < values.length; i++) buf.writeUInt16LE(floatToHalf(values[i]), 2 * i);
    raw = buf;
  } else if (dataType === DataType.DOUBLE) {
    const buf = Buffer.alloc(values.length * 8);
    for (let i = 0; i < values.length; i++) buf.writeDoubleLE(values[i], 8 * i);
    raw = buf;
  } else if (dataType === DataType.FLOAT) {
    const buf = Buffer.alloc(values.length * 4);
    for (let i = 0; i < values.length; i++) buf.writeFloatLE(values[i], 4 * i);
    raw = buf;
  } else {
    throw new DacError('EINVAL', `cannot write ${dataTypeName(dataType)} weights`, { field: name });
  }
  return create<TensorProto>('TensorProto', { name, dims, data_type: dataType, raw_data: raw });
}

/** Whether the tensor keeps its data outside the .onnx file. */
export function isExternal(t: TensorProto): boolean {
  return t.data_location === 1 || t.external_data.length > 0;
}

function attribute(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

function has(a: AttributeProto, field: string): boolean {
  return Object.prototype.hasOwnProperty.call(a, field);
}

export function attrInt(node: NodeProto, name: string, fallback: number): number {
  const a = attribute(node, name);
  if (!a) return fallback;
  if (a.type === AttrType.INT || (a.type === undefined && has(a, 'i'))) return toNumber(a.i);
  return fallback;
}

export function attrFloat(node: NodeProto, name: string, fallback: number): number {
  const a = attribute(node, name);
  if (!a) return fallback;
  if (a.type === AttrType.FLOAT || (a.type === undefined && has(a, 'f'))) return a.f ?? fallback;
  return fallback;
}

export function attrInts(node: NodeProto, name: string): number[] | null {
  const a = attribute(node, name);
  if (!a) return null;
  return a.ints.map(toNumber);
}

export function attrFloats(node: NodeProto, name: string): number[] | null {
  const a = attribute(node, name);
  if (!a) return null;
  return (a.floats ?? []).slice();
}

export function attrString(node: NodeProto, name: string, fallback: string): string {
  const a = attribute(node, name);
  if (!a || !a.s) return fallback;
  return Buffer.from(a.s).toString('utf8');
}

export function attrTensor(node: NodeProto, name: string): TensorProto | null {
  const a = attribute(node, name);
  return a?.t ?? null;
}

export function intsAttr(name: string, ints: number[]): AttributeProto {
  return create<AttributeProto>('AttributeProto', { name, type: AttrType.INTS, ints });
}

export function intAttr(name: string, i: number): AttributeProto {
  return create<AttributeProto>('AttributeProto', { name, type: AttrType.INT, i });
}

export function stringAttr(name: string, s: string): AttributeProto {
  return create<AttributeProto>('AttributeProto', { name, type: AttrType.STRING, s: Buffer.from(s, 'utf8') });
}
