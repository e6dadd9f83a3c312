// Public surface of server/auth: htpasswd-based basic auth and Entra ID bearer tokens (no HTTP wiring here).
export { VerifierPool, type VerifierPoolOptions } from './verifier-pool.ts';
export { HtpasswdAuthenticator, AuthBusyError, type PasswordVerifier, type HtpasswdAuthenticatorOptions, type AuthenticatorStats } from './authenticator.ts';
export { setPassword, removeUser, validateUserName, type SetPasswordOptions } from './passwd.ts';
export {
  parseHtpasswd,
  verifyPassword,
  hashClass,
  dummyHashLike,
  hashKind,
  unsupportedHashReason,
  type HashKind,
  type HtpasswdEntry,
  type ParsedHtpasswd,
  type ParseWarning,
} from './htpasswd.ts';
// Entra ID tokens: server/auth/entra.ts is imported on demand (it loads jose) when a tenant is set.
export { TokenError } from './token-error.ts';
export type { EntraVerifier, EntraOptions, EntraIdentity } from './entra.ts';
