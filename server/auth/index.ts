// Public surface of server/auth: htpasswd-based basic auth (no HTTP wiring here).
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
