/**
 * A failure the user can act on: the message is one line naming the problem and the fix.
 * Everything else that escapes is a bug and is reported as such.
 */
export type ErrorCode =
  | 'usage'
  | 'input'
  | 'engine'
  | 'build'
  | 'tool'
  | 'space'
  | 'interrupted'
  | 'internal';

const EXIT_CODES: Record<ErrorCode, number> = {
  usage: 2,
  input: 3,
  engine: 4,
  build: 5,
  tool: 6,
  space: 7,
  interrupted: 130,
  internal: 1,
};

export class C2vError extends Error {
  readonly code: ErrorCode;
  readonly detail?: string;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; detail?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'C2vError';
    this.code = code;
    this.detail = options?.detail;
  }

  get exitCode(): number {
    return EXIT_CODES[this.code];
  }
}

export function isC2vError(e: unknown): e is C2vError {
  return e instanceof C2vError;
}
