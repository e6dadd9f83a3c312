/** A bearer token was refused; the message is safe to show (it never contains the token). */
export class TokenError extends Error {
  /** True when the refusal is armhook's side (keys unavailable), not the caller's fault. */
  readonly ours: boolean;
  constructor(reason: string, ours = false) {
    super(reason);
    this.name = 'TokenError';
    this.ours = ours;
  }
}
