// Worker-thread entry of the zoo pool: loads the library in the worker and
// decomposes one model per request (job.ts), or times its convs (latency.ts).
import { serveRequests } from './pool.js';
import { runZooJob } from './job.js';
import { measureZooModel } from './latency.js';

serveRequests({ decompose: runZooJob, measure: measureZooModel });
