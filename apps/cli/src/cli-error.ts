/** A user mistake: printed as one sentence, without a stack trace. */
export class UsageError extends Error {
  override name = 'UsageError';
}
