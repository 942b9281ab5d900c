// One `dac zoo` run per output folder (or per shard of one split, shard.ts):
// two runs on the same folder would decompose the same models at once and
// race on the markers, so a run holds <out>/.dac-zoo/lock (or lock.<K>-of-<N>)
// while it works. The lock itself is src/io/lock.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DacError } from '../errors.js';
import { acquireLock, describeOwner, HEARTBEAT_MS, liveOwner, type HeldLock, type LockSubject } from '../io/lock.js';

export const LOCK_NAME = 'lock';

const zooRun = (out: string): LockSubject => ({ subject: `output folder ${out}`, holder: 'dac zoo run' });

/**
 * Locks the output folder `out` (which must exist) for this run, or throws
 * ELOCKED naming the run that holds it. `name` is the lock's file name in
 * <out>/<stateDir>: shards of one split each hold their own, so they share a folder.
 */
export function acquireZooLock(out: string, stateDir: string, name = LOCK_NAME, heartbeatMs = HEARTBEAT_MS): HeldLock {
  return acquireLock(path.join(out, stateDir, name), zooRun(out), { heartbeatMs });
}

/**
 * Throws ELOCKED when a run that could work on the same models holds another
 * lock of the folder: every lock file there (`lock`, `lock.<tag>`) other
 * than ours for which `compatible(name)` is false. Called once our own lock
 * is held, so of two such runs starting at once at least one sees the other.
 * Stale locks (their owner gone from this host) do not count.
 */
export function refuseOtherRuns(lock: HeldLock, compatible: (name: string) => boolean, describe: (name: string) => string): void {
  const dir = path.dirname(lock.file);
  for (const name of fs.readdirSync(dir).sort()) {
    if ((name !== LOCK_NAME && !name.startsWith(`${LOCK_NAME}.`)) || name.endsWith('.takeover')) continue;
    const file = path.join(dir, name);
    if (file === lock.file || compatible(name)) continue;
    const owner = liveOwner(file, zooRun(dir));
    if (owner === undefined) continue;
    const who = owner ? ` (${describeOwner(owner)})` : '';
    throw new DacError('ELOCKED', `output folder ${path.dirname(dir)} is in use by a dac zoo run of ${describe(name)}${who}; the two would redo each other's models; remove ${file} if no such run exists`, {
      field: 'out',
    });
  }
}
