// Worker-thread entry for the tests' isolated requests (isolated.ts).
import { serveRequests } from '../../src/zoo/pool.js';
import { callIsolated, probeModel } from './isolated.js';

serveRequests({ probe: probeModel, call: callIsolated });
