// Editing htpasswd files: add/update a user with a bcrypt hash, remove a user.
//
// Writes are atomic (temp file in the same directory, fsync, rename), every other line is kept
// byte for byte, a new file is created mode 0600, and an existing file keeps its mode and owner
// (so `sudo armhook passwd` does not leave a root-owned file the server cannot read).
// Concurrent editors are not locked against each other: the last rename wins.

import { readFile, realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { dirname } from 'node:path';
import bcrypt from 'bcryptjs';
import { AtomicWriteError, writeFileAtomic } from '../atomic-write.ts';
import { splitHtpasswdLine } from './htpasswd.ts';

export interface SetPasswordOptions {
  /** bcrypt cost, 4..17 like `htpasswd -C` (default 10). */
  cost?: number;
}

export const DEFAULT_BCRYPT_COST = 10;
/** bcrypt only reads this many bytes of a password. */
const BCRYPT_MAX_PASSWORD_BYTES = 72;
const MAX_USER_LENGTH = 255;

/**
 * Throws an Error explaining why `user` cannot be an htpasswd user name. Allowed: 1..255
 * characters, no ':' (the field separator), no control characters (newlines would break the
 * file), no leading/trailing whitespace and no leading '#' (both would change how the line reads).
 */
export function validateUserName(user: string): void {
  const bad = (why: string): never => {
    throw new Error(`invalid user name ${JSON.stringify(user)}: ${why}`);
  };
  if (user.length === 0) bad('it is empty');
  if (user.length > MAX_USER_LENGTH) bad(`it is longer than ${MAX_USER_LENGTH} characters`);
  if (user.includes(':')) bad('it must not contain ":"');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(user)) bad('it must not contain newlines or other control characters');
  if (user.trim() !== user) bad('it must not start or end with whitespace');
  if (user.startsWith('#')) bad('it must not start with "#" (that marks a comment line)');
}

function validatePassword(password: string): void {
  if (password.length === 0) throw new Error('the password must not be empty');
  if (password.includes('\u0000')) throw new Error('the password must not contain NUL characters');
  const bytes = Buffer.byteLength(password, 'utf8');
  if (bytes > BCRYPT_MAX_PASSWORD_BYTES) {
    throw new Error(`the password is ${bytes} bytes long; bcrypt only uses the first ${BCRYPT_MAX_PASSWORD_BYTES}, choose a shorter one`);
  }
}

/** bcrypt hash with the `$2y$` prefix that `htpasswd -B` writes (readable by Apache too). */
export async function hashPassword(password: string, cost: number = DEFAULT_BCRYPT_COST): Promise<string> {
  if (!Number.isInteger(cost) || cost < 4 || cost > 17) {
    throw new Error(`bcrypt cost must be an integer from 4 to 17 (got ${cost})`);
  }
  const salt = await bcrypt.genSalt(cost);
  // bcryptjs generates $2b$; $2y$ is the same algorithm and keeps the prefix through hash().
  return bcrypt.hash(password, `$2y$${salt.slice(4)}`);
}

async function resolveTarget(file: string): Promise<string> {
  try {
    return await realpath(file); // edit the file a symlink points to, not replace the link
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return file;
    throw err;
  }
}

async function readExisting(file: string): Promise<{ text: string; st: Stats } | undefined> {
  try {
    const [text, st] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    return { text, st };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new Error(`cannot read ${file} (permission denied); run as its owner or with sudo`, { cause: err });
    }
    if (code === 'EISDIR') throw new Error(`${file} is a directory, not an htpasswd file`, { cause: err });
    throw err;
  }
}

async function writeAtomically(file: string, text: string, existing: Stats | undefined): Promise<void> {
  const dir = dirname(file);
  try {
    await writeFileAtomic(file, text, {
      mode: existing === undefined ? 0o600 : existing.mode & 0o777,
      ...(existing ? { owner: { uid: existing.uid, gid: existing.gid } } : {}),
    });
  } catch (err) {
    if (!(err instanceof AtomicWriteError)) throw err;
    if (err.step === 'owner')
      throw new Error(`cannot keep the owner (uid ${existing?.uid}, gid ${existing?.gid}) of ${file}; run as its owner or with sudo`, { cause: err });
    if (err.code === 'ENOENT') throw new Error(`cannot create ${file}: directory ${dir} does not exist`, { cause: err });
    if (err.code === 'EACCES' || err.code === 'EPERM')
      throw new Error(`cannot write ${file}: no permission to create files in ${dir}; run as its owner or with sudo`, { cause: err });
    throw err.cause;
  }
}

/**
 * Rewrites `text` so `user` has `newLine` (or no line when undefined): the first line of that
 * user is replaced, later duplicates (dead anyway: the first one wins) are dropped, and all other
 * lines are kept as they are.
 */
function editLines(text: string, user: string, newLine: string | undefined): { text: string; found: boolean } {
  const lines = text === '' ? [] : text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop(); // final newline
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const out: string[] = [];
  let found = false;
  for (const raw of lines) {
    const parsed = splitHtpasswdLine(raw);
    if (parsed !== null && !('error' in parsed) && parsed.user === user) {
      if (!found && newLine !== undefined) out.push(newLine + (raw.endsWith('\r') ? '\r' : ''));
      found = true;
      continue;
    }
    out.push(raw);
  }
  if (!found && newLine !== undefined) out.push(newLine + (eol === '\r\n' ? '\r' : ''));
  return { text: out.length === 0 ? '' : out.join('\n') + '\n', found };
}

/**
 * Adds `user` to the htpasswd `file` or changes its password, as a bcrypt (`$2y$`) entry.
 * Creates the file (mode 0600) when it does not exist. Throws a clear Error for an invalid user
 * name or password and for files or directories that cannot be read or written.
 */
export async function setPassword(file: string, user: string, password: string, opts: SetPasswordOptions = {}): Promise<'added' | 'updated'> {
  validateUserName(user);
  validatePassword(password);
  const hash = await hashPassword(password, opts.cost ?? DEFAULT_BCRYPT_COST);
  const target = await resolveTarget(file);
  const existing = await readExisting(target);
  const edited = editLines(existing?.text ?? '', user, `${user}:${hash}`);
  await writeAtomically(target, edited.text, existing?.st);
  return edited.found ? 'updated' : 'added';
}

/** Removes `user` from `file`. Resolves false (and writes nothing) when the user or file is absent. */
export async function removeUser(file: string, user: string): Promise<boolean> {
  validateUserName(user);
  const target = await resolveTarget(file);
  const existing = await readExisting(target);
  if (existing === undefined) return false;
  const edited = editLines(existing.text, user, undefined);
  if (!edited.found) return false;
  await writeAtomically(target, edited.text, existing.st);
  return true;
}
