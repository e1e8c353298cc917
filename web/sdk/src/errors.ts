/** Error codes of tally's contract (docs/API.md), the same as the seed's. */
export const CODE = {
  /** Per-user rate limit: 20 writes, and 20 gets, per sliding 5 s. */
  RATE_LIMITED: 2996,
  /** Internal error or no answer: a write's outcome is unknown (the SDK has retried it). */
  INTERNAL: 10002,
  /** Invalid parameter: a bad key, value, user ID or signature, a 21st key. */
  INVALID_PARAMETER: 10004,
  /** Not allowed: not a member of a members-only group, or sign-in refused. */
  NOT_ALLOWED: 10007,
  /** Invalid group ID. */
  INVALID_GROUP_ID: 10015,
} as const;

/**
 * TallyError is what every call rejects with: the seed's `{code, message}`,
 * and an Error a caller can test with `instanceof`.
 */
export class TallyError extends Error {
  readonly code: number;

  constructor(code: number, message: string) {
    super(message);
    this.name = "TallyError";
    this.code = code;
  }
}
