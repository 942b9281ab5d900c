// Worker-thread entry of the zoo pool: loads the library in the worker and
// decomposes one model per request (job.ts), or times its convs (latency.ts).
import { serveRequests } from './pool.js';
import { runZooJob, type ZooJob } from './job.js';
import { measureZooModel } from './latency.js';
import type { ModelRecord } from './summary.js';

/**
 * Frees a finished model before the next comes: with gc() exposed (the zoo
 * command does it, zoo/run.ts prepareZooProcess) a full collection, so the
 * next model's peak does not land on the last one's garbage.
 */
async function decompose(job: ZooJob): Promise<ModelRecord> {
  try {
    return await runZooJob(job);
  } finally {
    const { gc } = globalThis as { gc?: () => void };
    gc?.();
  }
}

serveRequests({ decompose, measure: measureZooModel });
