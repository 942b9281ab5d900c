// One error type for everything the library rejects, so callers (and the
// CLI) can tell bad input from bugs and show where the problem is.

export interface ErrorContext {
  model?: string;
  layer?: string;
  field?: string;
}

export class DacError extends Error {
  readonly code: string;
  readonly context: ErrorContext;

  constructor(code: string, message: string, context: ErrorContext = {}) {
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
}
