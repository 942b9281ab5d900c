// One error type for everything the library rejects, so callers (and the
// CLI) can tell bad input from bugs and show where the problem is.

/**
 * Every code a DacError carries, grouped by what a caller can do about it
 * (DacError.kind). Codes are stable: new ones may be added, none renamed.
 */
export const DAC_ERROR_KINDS = {
  // The input (a model, an argument, a path) is wrong: fix it.
  EINVAL: 'input',
  EFORMAT: 'input',
  ESHAPE: 'input',
  ERANGE: 'input',
  ENONFINITE: 'input',
  EGRAPH: 'input',
  EPATH: 'input',
  EDTYPE: 'input',
  EPARSE: 'input',
  EALIAS: 'input',
  ENOENT: 'input',
  /** An output path would write over, or delete, an input or another output. */
  ECLASH: 'input',
  /** An output path holds something dac did not write. */
  EEXIST: 'input',
  EISDIR: 'input',
  ENOTDIR: 'input',
  // Within the format, but over a limit (size, time).
  ETOOBIG: 'too-big',
  ETIMEOUT: 'too-big',
  // Valid, but not something this version handles (or a missing optional package).
  EUNSUPPORTED: 'unsupported',
  ENOTFOUND: 'unsupported',
  ENOBACKEND: 'unsupported',
  // The file system refused (permissions, a read-only disk, a full disk, a lock).
  EIO: 'io',
  EACCES: 'io',
  ELOCK: 'io',
  ELOCKED: 'io',
  // A bug or a failure of the machinery itself, not of the input.
  EINTERNAL: 'internal',
  /** A zoo worker died (crash, out of memory). */
  EWORKER: 'internal',
  EKERNEL: 'internal',
  ECLOSED: 'internal',
} as const;

export type DacErrorCode = keyof typeof DAC_ERROR_KINDS;
export type DacErrorKind = (typeof DAC_ERROR_KINDS)[DacErrorCode];

export interface ErrorContext {
  model?: string;
  layer?: string;
  field?: string;
}

export class DacError extends Error {
  readonly code: DacErrorCode;
  readonly context: ErrorContext;

  constructor(code: DacErrorCode, message: string, context: ErrorContext = {}) {
    const where = [
      context.model ? `model ${context.model}` : '',
      context.layer ? `layer ${context.layer}` : '',
      context.field ? `field ${context.field}` : '',
    ].filter(Boolean);
    super(where.length ? `${where.join(', ')}: ${message}` : message);
    this.name = 'DacError';
    this.code = code;
    this.context = context;
  }

  /** input | too-big | unsupported | io | internal. */
  get kind(): DacErrorKind {
    return DAC_ERROR_KINDS[this.code] ?? 'internal';
  }

  get model(): string | undefined {
    return this.context.model;
  }

  get layer(): string | undefined {
    return this.context.layer;
  }

  get field(): string | undefined {
    return this.context.field;
  }
}

/**
 * Any thrown value as a DacError: a DacError as is, a file-system error as
 * EIO/EACCES/ENOENT naming the path, anything else as EINTERNAL (a bug).
 */
export function toDacError(err: unknown, context: ErrorContext = {}): DacError {
  if (err instanceof DacError) return err;
  const e = err as NodeJS.ErrnoException;
  const msg = err instanceof Error ? err.message : String(err);
  if (e && typeof e.code === 'string' && typeof e.syscall === 'string') {
    const where = e.path ? ` ${e.path}` : '';
    // Any other refusal of a system call (a full disk, too many open files, a busy file) is the disk's, not a bug.
    const code: DacErrorCode = e.code === 'ENOENT' ? 'ENOENT' : e.code === 'EACCES' || e.code === 'EPERM' || e.code === 'EROFS' ? 'EACCES' : 'EIO';
    return new DacError(code, `cannot ${e.syscall}${where}: ${e.code}`, context);
  }
  return new DacError('EINTERNAL', `internal error (a bug; please report it): ${msg.split('\n')[0]}`, context);
}
