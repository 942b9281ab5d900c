// Measured latency on this device (`dac bench`) and the table planning reads.
export { benchModel, variantsOf, DEFAULT_BENCH_PLAN, type BenchOptions } from './bench.js';
export { RUNTIMES, stagesOf, type RuntimeId, type Variant } from './engines.js';
export { convTotals, latencyMarkdown, latencySvg } from './report.js';
export { geometryKey, planLatencies, planTimes, readLatencyTable, LATENCY_TABLE_VERSION, type LatencyTable, type LayerLatency, type LayerTimes, type VariantTime, type WholeModelTime } from './table.js';
