// One writer at a time: a run that must not overlap another on the same
// output (a `dac zoo` run on its output folder, a `dac decompose` on its -o)
// holds a lock file while it works: created exclusively (O_EXCL), holding
// the pid, host and start time of its owner, removed when the run ends and
// on process exit; the CLI also removes it on SIGINT/SIGTERM
// (releaseOnSignals). A lock whose owner is gone (its pid no longer runs on
// this host) is stale and is taken over. Whether a run on another host (a
// shared filesystem: zoo shards) is alive cannot be asked, so a holder
// refreshes its lock's mtime every minute, and another host's lock not
// refreshed for REMOTE_STALE_MS (by the file server's clock, so the hosts'
// clocks do not matter) is stale: a run whose machine died resumes wherever
// it is run again.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DacError } from '../errors.js';

/** A lock file this young with no readable owner is still being written. */
const WRITING_GRACE_MS = 10_000;
/** How often a holder refreshes its lock's mtime. */
export const HEARTBEAT_MS = 60_000;
/** Another host's lock not refreshed for this long is stale: ten missed heartbeats. */
export const REMOTE_STALE_MS = 10 * HEARTBEAT_MS;

export interface LockOwner {
  pid: number;
  hostname: string;
  startedAt: string;
}

/** What a lock guards and who holds such locks, for the messages: "output folder X", "dac zoo run". */
export interface LockSubject {
  subject: string;
  holder: string;
}

export interface HeldLock {
  file: string;
  owner: LockOwner;
  /** Set when a stale lock was taken over: what it said. */
  tookOver: LockOwner | null;
  release(): void;
}

interface Found {
  owner: LockOwner | null;
  mtimeMs: number;
}

function readOwner(file: string): Found | null {
  let text: string;
  let mtimeMs: number;
  try {
    mtimeMs = fs.statSync(file).mtimeMs;
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const o = JSON.parse(text) as LockOwner;
    if (Number.isInteger(o.pid) && o.pid > 0 && typeof o.hostname === 'string' && typeof o.startedAt === 'string') return { owner: o, mtimeMs };
  } catch {
    // Empty or partial: its owner may be writing it right now (see WRITING_GRACE_MS).
  }
  return { owner: null, mtimeMs };
}

/** Does `pid` run on this host? EPERM means it runs under another user. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function describeOwner(o: LockOwner): string {
  const self = o.pid === process.pid && o.hostname === os.hostname() ? ', this process' : '';
  return `pid ${o.pid} on ${o.hostname}${self}, started ${o.startedAt}`;
}

function createExclusive(file: string, owner: LockOwner, field: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new DacError('ELOCK', `cannot create the lock ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`, { field });
  }
  try {
    fs.writeFileSync(fd, `${JSON.stringify(owner)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/** The file server's time now: the mtime of a file just created beside `file` (Date.now() if that fails). */
function serverNow(file: string): number {
  // A dot name: never taken for a lock (lock names do not start with a dot).
  const probe = path.join(path.dirname(file), `.probe-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  try {
    fs.writeFileSync(probe, '');
    return fs.statSync(probe).mtimeMs;
  } catch {
    return Date.now();
  } finally {
    fs.rmSync(probe, { force: true });
  }
}

/**
 * Why the lock at `file` may not be taken (the error to throw), or null when
 * it is stale: its owner's pid is gone from this host, its owner is on
 * another host and has not refreshed it for REMOTE_STALE_MS, or it is
 * unreadable and older than the grace a writer needs.
 */
function refusal(file: string, found: Found, who: LockSubject, field: string): DacError | null {
  const { owner } = found;
  const remove = `remove ${file} if no such run exists`;
  if (!owner) {
    if (Date.now() - found.mtimeMs < WRITING_GRACE_MS) {
      return new DacError('ELOCKED', `${who.subject} is being locked by another ${who.holder} right now; try again, or ${remove}`, { field });
    }
    return null;
  }
  if (owner.hostname !== os.hostname()) {
    if (serverNow(file) - found.mtimeMs > REMOTE_STALE_MS) return null;
    return new DacError(
      'ELOCKED',
      `${who.subject} is in use by a ${who.holder} on another host (${describeOwner(owner)}); wait for it to finish ` +
        `(a lock its run stops refreshing is taken over after ${REMOTE_STALE_MS / 60_000} minutes), or ${remove}`,
      { field },
    );
  }
  if (alive(owner.pid) && !earlierSelf(owner)) {
    return new DacError('ELOCKED', `${who.subject} is in use by another ${who.holder} (${describeOwner(owner)}); wait for it to finish, or ${remove}`, { field });
  }
  return null;
}

/**
 * The owner of the lock at `file` when a live run holds it (null for an
 * unreadable lock still being written), or undefined when there is no lock
 * or it is stale.
 */
export function liveOwner(file: string, who: LockSubject, field = 'out'): LockOwner | null | undefined {
  const found = readOwner(file);
  if (!found || !refusal(file, found, who, field)) return undefined;
  return found.owner;
}

const sameOwner = (a: LockOwner | null, b: LockOwner | null): boolean =>
  a === b || (!!a && !!b && a.pid === b.pid && a.hostname === b.hostname && a.startedAt === b.startedAt);

/**
 * Replaces a stale lock. Two runs may find the same stale lock: the one that
 * creates `<lock>.takeover` exclusively re-reads the lock and replaces it
 * only if it is still the stale one; the other finds the new lock held.
 */
function takeOver(file: string, stale: LockOwner | null, owner: LockOwner, field: string): boolean {
  const guard = `${file}.takeover`;
  try {
    const st = fs.statSync(guard);
    // A takeover lasts milliseconds: an old guard is left by a run that died during one.
    if (Date.now() - st.mtimeMs > WRITING_GRACE_MS) fs.rmSync(guard, { force: true });
  } catch {
    // No guard: the usual case.
  }
  if (!createExclusive(guard, owner, field)) return false;
  try {
    const now = readOwner(file);
    if (now && !sameOwner(now.owner, stale)) return false;
    fs.rmSync(file, { force: true });
    return createExclusive(file, owner, field);
  } finally {
    fs.rmSync(guard, { force: true });
  }
}

const held = new Set<HeldLock>();

/**
 * A lock naming this process's pid on this host, taken before this process
 * started: left by an earlier process that had the same pid. A restarted
 * container (a Kubernetes Job's retried pod) starts its processes with the
 * same pids, so its dead predecessor's lock would otherwise look alive
 * forever. (Not "a lock this module does not hold": a worker thread of this
 * process has its own module state, and its locks are live.)
 */
function earlierSelf(o: LockOwner): boolean {
  return o.pid === process.pid && Date.parse(o.startedAt) < performance.timeOrigin;
}

function releaseAll(): void {
  for (const lock of [...held]) lock.release();
}

/**
 * Makes SIGINT and SIGTERM release every held lock and then end the process
 * as the signal would have; returns the undo. For a program that owns its
 * process (the CLI): a library caller's own signal handling is left alone,
 * and a lock a signal leaves behind is stale, so the next run takes it over.
 */
export function releaseOnSignals(): () => void {
  const onSignal = (signal: NodeJS.Signals): void => {
    releaseAll();
    undo();
    // Our listener is gone: the signal now does what it would have (or what the remaining listeners do).
    process.kill(process.pid, signal);
  };
  const undo = (): void => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return undo;
}

/**
 * Takes the lock at `file` (its folder is created if missing) for this run,
 * or throws ELOCKED naming the run that holds it. `field` is what the
 * errors name (the option that chose the locked output).
 */
export function acquireLock(file: string, who: LockSubject, opts: { field?: string; heartbeatMs?: number } = {}): HeldLock {
  const field = opts.field ?? 'out';
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const owner: LockOwner = { pid: process.pid, hostname: os.hostname(), startedAt: new Date().toISOString() };
  let tookOver: LockOwner | null = null;
  let acquired = false;
  // A few rounds: a lock may vanish or be replaced between looking at it and acting.
  for (let round = 0; round < 5 && !acquired; round++) {
    if (createExclusive(file, owner, field)) {
      acquired = true;
      break;
    }
    const found = readOwner(file);
    if (!found) continue;
    const why = refusal(file, found, who, field);
    if (why) throw why;
    if (takeOver(file, found.owner, owner, field)) {
      acquired = true;
      tookOver = found.owner ?? { pid: 0, hostname: 'unknown (unreadable lock)', startedAt: new Date(found.mtimeMs).toISOString() };
    }
  }
  if (!acquired) throw new DacError('ELOCKED', `${who.subject}: could not take its lock ${file}; another run keeps changing it`, { field });

  // Keeps the lock fresh for runs on other hosts; never keeps the process alive by itself.
  const heartbeat = setInterval(() => {
    try {
      const now = readOwner(file);
      if (now && sameOwner(now.owner, owner)) {
        const t = new Date();
        fs.utimesSync(file, t, t);
      }
    } catch {
      // A missed beat is harmless: ten in a row are needed before another host takes the lock.
    }
  }, opts.heartbeatMs ?? HEARTBEAT_MS);
  heartbeat.unref();
  const lock: HeldLock = {
    file,
    owner,
    tookOver,
    release: () => {
      clearInterval(heartbeat);
      if (!held.delete(lock)) return;
      if (held.size === 0) process.off('exit', releaseAll);
      try {
        // Only our own lock goes: a run that took over a lock we lost must keep its own.
        const now = readOwner(file);
        if (now && sameOwner(now.owner, owner)) fs.rmSync(file, { force: true });
      } catch {
        // Runs at exit too, where throwing helps no one: a lock left behind is stale and taken over.
      }
    },
  };
  if (held.size === 0) process.on('exit', releaseAll);
  held.add(lock);
  return lock;
}
