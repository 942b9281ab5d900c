// The TF.js backends a runner can use. A name only, apart from the runners:
// their declarations name @tensorflow/tfjs and onnxruntime-node (optional
// peers), and the package root's types (the bench API) must compile without them.
export type TfjsBackendName = 'tensorflow' | 'cpu' | 'wasm';
