// Worker-thread entry of the zoo pool: loads the library in the worker and
// answers one request at a time. Anything a request throws goes back as a
// serialized error; the worker itself stays up for the next request.
import { parentPort } from 'node:worker_threads';
import { serializeError, type WorkerReply, type WorkerRequest } from './pool.js';
import { callIsolated, inspectModel, runZooJob } from './job.js';

const handlers: Record<string, (payload: never) => unknown> = {
  decompose: runZooJob,
  inspect: inspectModel,
  call: callIsolated,
};

if (!parentPort) throw new Error('src/zoo/worker must run in a worker thread');
const port = parentPort;

port.on('message', (req: WorkerRequest) => {
  void (async () => {
    let reply: WorkerReply;
    try {
      const handler = handlers[req.kind];
      if (!handler) throw new Error(`unknown worker request '${req.kind}'`);
      reply = { id: req.id, ok: true, result: await handler(req.payload as never) };
    } catch (err) {
      reply = { id: req.id, ok: false, error: serializeError(err) };
    }
    port.postMessage(reply);
  })();
});
