// htpasswd files: parsing and password verification.
//
// Supported hash forms are the ones Apache's `htpasswd` writes and that are worth accepting:
//   bcrypt  `$2y$` / `$2b$` / `$2a$` (htpasswd -B)
//   apr1    `$apr1$` MD5 (htpasswd -m, its default), and the glibc `$1$` MD5-crypt variant
//   SHA-1   `{SHA}` + base64 (htpasswd -s)
// Everything else (DES crypt, plaintext, `$5$`/`$6$` SHA-crypt, unknown) never verifies; the
// caller gets a reason from `unsupportedHashReason` to log once per file load.
//
// Nothing here ever puts a password or a hash into an error or warning text.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import aprMd5 from 'apache-md5';
import bcrypt from 'bcryptjs';

export type HashKind = 'bcrypt' | 'apr1' | 'md5-crypt' | 'sha1' | 'bcrypt-2x' | 'sha256-crypt' | 'sha512-crypt' | 'des-crypt' | 'unknown';

/** Hash kinds `verifyPassword` can check. */
export const SUPPORTED_HASH_KINDS: readonly HashKind[] = ['bcrypt', 'apr1', 'md5-crypt', 'sha1'];

const HASH_LABELS: Record<HashKind, string> = {
  bcrypt: 'bcrypt',
  apr1: 'Apache MD5 ($apr1$)',
  'md5-crypt': 'MD5-crypt ($1$)',
  sha1: 'SHA-1 ({SHA})',
  'bcrypt-2x': 'bcrypt $2x$ (buggy legacy variant)',
  'sha256-crypt': 'SHA-256-crypt ($5$)',
  'sha512-crypt': 'SHA-512-crypt ($6$)',
  'des-crypt': 'DES crypt',
  unknown: 'unrecognised (plaintext?)',
};

const BCRYPT_RE = /^\$2[aby]?\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const APR1_RE = /^\$apr1\$[^$]{0,8}\$[./0-9A-Za-z]{22}$/;
const MD5_CRYPT_RE = /^\$1\$[^$]{0,8}\$[./0-9A-Za-z]{22}$/;
const SHA1_RE = /^\{SHA\}[A-Za-z0-9+/]{27}=$/;
const DES_RE = /^[./0-9A-Za-z]{13}$/;

/** Classifies a stored hash by its form. */
export function hashKind(hash: string): HashKind {
  if (BCRYPT_RE.test(hash)) return 'bcrypt';
  if (hash.startsWith('$2x$')) return 'bcrypt-2x';
  if (APR1_RE.test(hash)) return 'apr1';
  if (MD5_CRYPT_RE.test(hash)) return 'md5-crypt';
  if (SHA1_RE.test(hash)) return 'sha1';
  if (hash.startsWith('$5$')) return 'sha256-crypt';
  if (hash.startsWith('$6$')) return 'sha512-crypt';
  if (DES_RE.test(hash)) return 'des-crypt';
  return 'unknown';
}

/**
 * What a verification against `hash` costs: its kind, and for bcrypt its cost factor too
 * (`bcrypt:10`). Hashes of one class take the same time to check.
 */
export function hashClass(hash: string): string {
  const kind = hashKind(hash);
  return kind === 'bcrypt' ? `bcrypt:${BCRYPT_RE.exec(hash)?.[1]}` : kind;
}

const CRYPT_ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function randomCryptChars(n: number): string {
  let out = '';
  for (const byte of randomBytes(n)) out += CRYPT_ALPHABET[byte & 63];
  return out;
}

/**
 * A hash of the same class as `hash` (same algorithm, same bcrypt cost, same salt length) that
 * no password matches: random salt and digest, never derived from a real entry. Checking a
 * password against it costs what checking against `hash` costs.
 */
export function dummyHashLike(hash: string): string {
  switch (hashKind(hash)) {
    case 'bcrypt':
      return `${hash.slice(0, 7)}${randomCryptChars(53)}`;
    case 'apr1':
    case 'md5-crypt': {
      const [, magic = '', salt = ''] = hash.split('$');
      return `$${magic}$${randomCryptChars(salt.length)}$${randomCryptChars(22)}`;
    }
    case 'sha1':
      return `{SHA}${randomBytes(20).toString('base64')}`;
    default:
      throw new Error(`no dummy for an unsupported hash type (${HASH_LABELS[hashKind(hash)]})`);
  }
}

export function isSupportedHash(hash: string): boolean {
  return SUPPORTED_HASH_KINDS.includes(hashKind(hash));
}

/**
 * Why `user`'s entry can never verify, or undefined when its hash form is supported.
 * The text names the user and the hash type, never the hash itself.
 */
export function unsupportedHashReason(user: string, hash: string, file?: string): string | undefined {
  const kind = hashKind(hash);
  if (SUPPORTED_HASH_KINDS.includes(kind)) return undefined;
  const how = file === undefined ? '`armhook passwd <file> <user>`' : `\`armhook passwd ${file} ${user}\``;
  return `user ${JSON.stringify(user)} has an unsupported hash type (${HASH_LABELS[kind]}); re-create it with ${how} (bcrypt) or \`htpasswd -B\``;
}

export interface ParseWarning {
  /** 1-based line number in the file. */
  line: number;
  message: string;
}

export interface HtpasswdEntry {
  user: string;
  hash: string;
  /** 1-based line number in the file. */
  line: number;
}

export interface ParsedHtpasswd {
  /** user → entry, first occurrence wins (like Apache's mod_authn_file). */
  entries: Map<string, HtpasswdEntry>;
  /** Malformed or duplicate lines that were skipped; texts carry no line content. */
  warnings: ParseWarning[];
}

/**
 * Splits one htpasswd line the way Apache does: surrounding whitespace ignored, blank lines and
 * `#` comments skipped (null), user up to the first ':', hash up to the next ':' (any further
 * fields are ignored). Returns an error text (no line content) for malformed lines.
 */
export function splitHtpasswdLine(raw: string): { user: string; hash: string } | { error: string } | null {
  const line = raw.trim();
  if (line === '' || line.startsWith('#')) return null;
  const colon = line.indexOf(':');
  if (colon < 0) return { error: 'no ":" separating user and hash' };
  const user = line.slice(0, colon);
  const rest = line.slice(colon + 1);
  const next = rest.indexOf(':');
  const hash = next < 0 ? rest : rest.slice(0, next);
  if (user === '') return { error: 'empty user name' };
  if (hash === '') return { error: 'empty hash' };
  return { user, hash };
}

/** Parses htpasswd text. Never throws; malformed lines are skipped and reported in `warnings`. */
export function parseHtpasswd(text: string): ParsedHtpasswd {
  const entries = new Map<string, HtpasswdEntry>();
  const warnings: ParseWarning[] = [];
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const lines = body.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const parsed = splitHtpasswdLine(lines[i] ?? '');
    if (parsed === null) continue;
    if ('error' in parsed) {
      warnings.push({ line: lineNo, message: `line ${lineNo} skipped: ${parsed.error}` });
      continue;
    }
    const seen = entries.get(parsed.user);
    if (seen !== undefined) {
      warnings.push({
        line: lineNo,
        message: `line ${lineNo} skipped: user ${JSON.stringify(parsed.user)} already defined on line ${seen.line}`,
      });
      continue;
    }
    entries.set(parsed.user, { user: parsed.user, hash: parsed.hash, line: lineNo });
  }
  return { entries, warnings };
}

/** Constant-time comparison; unequal lengths still spend a comparison and yield false. */
function safeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) {
    timingSafeEqual(a, a);
    return false;
  }
  return timingSafeEqual(a, b);
}

/**
 * apache-md5 feeds its input to MD5 with the 'ascii' (= latin1) encoding, i.e. one byte per
 * UTF-16 unit. htpasswd hashes the password's bytes as typed (UTF-8), so hand it a string whose
 * code units are exactly those bytes.
 */
function utf8AsBinaryString(password: string): string {
  return Buffer.from(password, 'utf8').toString('latin1');
}

/**
 * Checks `password` against one stored htpasswd hash: false for a wrong password, a malformed
 * hash or an unsupported hash form; never throws. It hashes on the calling thread (a bcrypt
 * entry of cost 10 takes tens of milliseconds): the server calls it from its verifier pool only.
 */
export function verifyPassword(password: string, hash: string): boolean {
  try {
    switch (hashKind(hash)) {
      case 'bcrypt': {
        // bcryptjs accepts $2a$/$2b$/$2y$ and keeps the prefix of the salt it is given, so
        // hashing with the stored hash as salt reproduces the stored string on a match.
        const computed = bcrypt.hashSync(password, hash);
        return safeEqual(Buffer.from(computed, 'latin1'), Buffer.from(hash, 'latin1'));
      }
      case 'apr1':
      case 'md5-crypt': {
        const computed = aprMd5(utf8AsBinaryString(password), hash);
        return safeEqual(Buffer.from(computed, 'latin1'), Buffer.from(hash, 'latin1'));
      }
      case 'sha1': {
        const stored = Buffer.from(hash.slice('{SHA}'.length), 'base64');
        const computed = createHash('sha1').update(password, 'utf8').digest();
        return safeEqual(computed, stored);
      }
      default:
        return false;
    }
  } catch {
    return false;
  }
}
