// Worker-thread entry of the zoo pool: loads the library in the worker and
// decomposes one model per request (job.ts), or times its convs (latency.ts).
import { serveRequests } from './pool.js';
import { runZooJob, type ZooJob } from './job.js';
import { measureZooModel } from './latency.js';
import type { ModelRecord } from './summary.js';

/** V8's gc(), exposed to workers the zoo command starts (zoo/run.ts prepareZooProcess), else absent. */
const { gc } = globalThis as { gc?: () => void };

/**
 * One model, collecting its input once it is dead (job.ts) and the rest
 * after it, so the next model's peak does not land on this one's garbage.
 */
async function decompose(job: ZooJob): Promise<ModelRecord> {
  try {
    return await runZooJob(job, { collect: gc });
  } finally {
    gc?.();
  }
}

serveRequests({ decompose, measure: measureZooModel });
