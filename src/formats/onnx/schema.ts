// The subset of onnx.proto (ONNX IR version <= 10) that models carry, as
// protobufjs reflection. Field numbers follow the ONNX specification. Every
// message a model can hold is declared, so decoding and re-encoding keeps
// what we do not touch; protobufjs would silently drop undeclared fields.
import * as protobuf from 'protobufjs';

const ONNX_PROTO = `
syntax = "proto2";
package onnx;

message AttributeProto {
  enum AttributeType {
    UNDEFINED = 0; FLOAT = 1; INT = 2; STRING = 3; TENSOR = 4; GRAPH = 5; SPARSE_TENSOR = 11; TYPE_PROTO = 13;
    FLOATS = 6; INTS = 7; STRINGS = 8; TENSORS = 9; GRAPHS = 10; SPARSE_TENSORS = 12; TYPE_PROTOS = 14;
  }
  optional string name = 1;
  optional string ref_attr_name = 21;
  optional string doc_string = 13;
  optional AttributeType type = 20;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  optional GraphProto g = 6;
  optional SparseTensorProto sparse_tensor = 22;
  optional TypeProto tp = 14;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
  repeated SparseTensorProto sparse_tensors = 23;
  repeated TypeProto type_protos = 15;
}

message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
  repeated StringStringEntryProto metadata_props = 4;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  optional string domain = 7;
  optional string overload = 8;
  repeated AttributeProto attribute = 5;
  optional string doc_string = 6;
  repeated StringStringEntryProto metadata_props = 9;
}

message TrainingInfoProto {
  optional GraphProto initialization = 1;
  optional GraphProto algorithm = 2;
  repeated StringStringEntryProto initialization_binding = 3;
  repeated StringStringEntryProto update_binding = 4;
}

message ModelProto {
  optional int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated StringStringEntryProto metadata_props = 14;
  repeated TrainingInfoProto training_info = 20;
  repeated FunctionProto functions = 25;
}

message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}

message TensorAnnotation {
  optional string tensor_name = 1;
  repeated StringStringEntryProto quant_parameter_tensor_names = 2;
}

message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  repeated SparseTensorProto sparse_initializer = 15;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
  repeated TensorAnnotation quantization_annotation = 14;
  repeated StringStringEntryProto metadata_props = 16;
}

message TensorProto {
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  message Segment {
    optional int64 begin = 1;
    optional int64 end = 2;
  }
  optional Segment segment = 3;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional string doc_string = 12;
  optional bytes raw_data = 9;
  repeated StringStringEntryProto external_data = 13;
  optional int32 data_location = 14;
  repeated double double_data = 10 [packed = true];
  repeated uint64 uint64_data = 11 [packed = true];
  repeated StringStringEntryProto metadata_props = 16;
}

message SparseTensorProto {
  optional TensorProto values = 1;
  optional TensorProto indices = 2;
  repeated int64 dims = 3;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    optional string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  message Sequence {
    optional TypeProto elem_type = 1;
  }
  message Map {
    optional int32 key_type = 1;
    optional TypeProto value_type = 2;
  }
  message Optional {
    optional TypeProto elem_type = 1;
  }
  message SparseTensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
    Sequence sequence_type = 4;
    Map map_type = 5;
    Optional optional_type = 9;
    SparseTensor sparse_tensor_type = 8;
  }
  optional string denotation = 6;
}

message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}

message FunctionProto {
  optional string name = 1;
  repeated string input = 4;
  repeated string output = 5;
  repeated string attribute = 6;
  repeated AttributeProto attribute_proto = 11;
  repeated NodeProto node = 7;
  optional string doc_string = 8;
  repeated OperatorSetIdProto opset_import = 9;
  optional string domain = 10;
  optional string overload = 13;
  repeated ValueInfoProto value_info = 12;
  repeated StringStringEntryProto metadata_props = 14;
}
`;

/** TensorProto.DataType values this package reads or writes. */
export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  FLOAT16: 10,
  DOUBLE: 11,
} as const;

/** AttributeProto.AttributeType values. */
export const AttrType = {
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  FLOATS: 6,
  INTS: 7,
} as const;

/** ONNX IR versions this schema covers completely. */
export const MAX_IR_VERSION = 10;

let root: protobuf.Root | null = null;

function schema(): protobuf.Root {
  if (!root) root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
  return root;
}

export function modelType(): protobuf.Type {
  return schema().lookupType('onnx.ModelProto');
}

// Plain shapes of the decoded messages (the fields this package reads or sets;
// the objects carry the rest through untouched). int64 fields decode to Long
// objects; use toNumber() on them.
export type Int64 = number | { toNumber(): number; low: number; high: number };

export interface TensorProto {
  dims: Int64[];
  data_type?: number;
  segment?: unknown;
  float_data: number[];
  int32_data: number[];
  string_data: Uint8Array[];
  int64_data: Int64[];
  name?: string;
  doc_string?: string;
  raw_data?: Uint8Array;
  external_data: { key?: string; value?: string }[];
  data_location?: number;
  double_data: number[];
  uint64_data: Int64[];
}

export interface AttributeProto {
  name?: string;
  type?: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats: number[];
  ints: Int64[];
  strings: Uint8Array[];
  graphs: GraphProto[];
  ref_attr_name?: string;
}

export interface NodeProto {
  input: string[];
  output: string[];
  name?: string;
  op_type?: string;
  domain?: string;
  attribute: AttributeProto[];
}

export interface DimProto {
  dim_value?: Int64;
  dim_param?: string;
  value?: string;
}

export interface TypeProto {
  tensor_type?: { elem_type?: number; shape?: { dim: DimProto[] } };
  value?: string;
}

export interface ValueInfoProto {
  name?: string;
  type?: TypeProto;
}

export interface GraphProto {
  node: NodeProto[];
  name?: string;
  initializer: TensorProto[];
  sparse_initializer: unknown[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  value_info: ValueInfoProto[];
  quantization_annotation: { tensor_name?: string }[];
}

export interface ModelProto {
  ir_version?: Int64;
  opset_import: { domain?: string; version?: Int64 }[];
  producer_name?: string;
  graph?: GraphProto;
  functions: unknown[];
  training_info: unknown[];
}

export function toNumber(v: Int64 | undefined | null): number {
  if (v === undefined || v === null) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

export function decodeModel(bytes: Uint8Array): ModelProto {
  return modelType().decode(bytes) as unknown as ModelProto;
}

export function encodeModel(model: ModelProto): Uint8Array {
  const type = modelType();
  return type.encode(model as unknown as protobuf.Message).finish();
}

/** The fields of `msg` (own properties, as protobufjs sets them) whose numbers pass `keep`, as a message of `type` to encode. */
function fieldsOf(type: protobuf.Type, msg: object, keep: (id: number) => boolean): Record<string, unknown> {
  const part: Record<string, unknown> = {};
  for (const f of type.fieldsArray) {
    if (keep(f.id) && Object.prototype.hasOwnProperty.call(msg, f.name)) part[f.name] = (msg as Record<string, unknown>)[f.name];
  }
  return part;
}

/** The key of a length-delimited field and a length, as protobuf writes them before the field's bytes. */
function lengthPrefix(field: number, length: number): Uint8Array {
  return protobuf.Writer.create().uint32((field << 3) | 2).uint32(length).finish();
}

const GRAPH_FIELD = 7;
const INITIALIZER_FIELD = 5;
const RAW_DATA_FIELD = 9;

/**
 * encodeModel's bytes, as chunks: every initializer's raw_data is a chunk of
 * its own, the tensor's own bytes (not a copy), and only the rest is
 * encoded. protobufjs writes a message's fields in field-number order, and
 * so do these chunks, so their concatenation is encodeModel's output.
 */
export function encodeModelChunks(model: ModelProto): Uint8Array[] {
  const graph = model.graph;
  if (!graph || !Object.prototype.hasOwnProperty.call(model, 'graph')) return [encodeModel(model)];
  const modelT = modelType();
  const graphT = schema().lookupType('onnx.GraphProto');
  const tensorT = schema().lookupType('onnx.TensorProto');
  const enc = (type: protobuf.Type, part: Record<string, unknown>): Uint8Array => type.encode(part).finish();
  const body: Uint8Array[] = [enc(graphT, fieldsOf(graphT, graph, (id) => id < INITIALIZER_FIELD))];
  for (const t of graph.initializer) {
    const head = enc(tensorT, fieldsOf(tensorT, t, (id) => id < RAW_DATA_FIELD));
    const tail = enc(tensorT, fieldsOf(tensorT, t, (id) => id > RAW_DATA_FIELD));
    const raw = Object.prototype.hasOwnProperty.call(t, 'raw_data') && t.raw_data != null ? t.raw_data : null;
    const rawPrefix = raw ? lengthPrefix(RAW_DATA_FIELD, raw.length) : new Uint8Array(0);
    const size = head.length + rawPrefix.length + (raw?.length ?? 0) + tail.length;
    body.push(Buffer.concat([lengthPrefix(INITIALIZER_FIELD, size), head, rawPrefix]));
    if (raw) body.push(raw);
    if (tail.length) body.push(tail);
  }
  body.push(enc(graphT, fieldsOf(graphT, graph, (id) => id > INITIALIZER_FIELD)));
  const graphSize = body.reduce((a, c) => a + c.length, 0);
  return [
    Buffer.concat([enc(modelT, fieldsOf(modelT, model, (id) => id < GRAPH_FIELD)), lengthPrefix(GRAPH_FIELD, graphSize)]),
    ...body,
    enc(modelT, fieldsOf(modelT, model, (id) => id > GRAPH_FIELD)),
  ].filter((c) => c.length > 0);
}

/** A new message of the given ONNX type with the given fields (protobufjs fills repeated fields). */
export function create<T>(typeName: string, fields: object): T {
  return schema().lookupType(`onnx.${typeName}`).create(fields as Record<string, unknown>) as unknown as T;
}
