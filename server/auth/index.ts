// Public surface of server/auth: htpasswd-based basic auth (no HTTP wiring here).
export { HtpasswdAuthenticator, type HtpasswdAuthenticatorOptions, type AuthenticatorStats } from './authenticator.ts';
export { setPassword, removeUser, validateUserName, type SetPasswordOptions } from './passwd.ts';
export {
  parseHtpasswd,
  verifyPassword,
  hashKind,
  unsupportedHashReason,
  type HashKind,
  type HtpasswdEntry,
  type ParsedHtpasswd,
  type ParseWarning,
} from './htpasswd.ts';
