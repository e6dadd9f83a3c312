// The access file as it is now. Every request that needs the rules does one async stat (shared by
// concurrent requests); a changed file (inode, size, mtime, ctime) is read and parsed again, and
// the secret files it names with it (touching the access file after rotating a secret). A
// file modified within the last two seconds may hide a later edit of the same size in the same
// timestamp tick, so until it is older its content is compared on each look. A broken edit keeps
// the last good rules and logs why, once per version; a fixed edit is logged too.

import { createHash } from 'node:crypto';
import { open as openFile, stat } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import type { Logger } from 'pino';
import { AccessFileError, parseAccessFile, signatureWarnings, type AccessPolicy } from './rules.ts';

const RACY_WINDOW_MS = 2000;

interface Version {
  sig: string;
  racy: boolean;
  digest: string;
}

function signatureOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/** Reads the file once: its text and the signature of exactly what was read. */
async function readVersion(file: string): Promise<{ text: string; version: Version }> {
  const fh = await openFile(file, 'r');
  try {
    const st = await fh.stat({ bigint: true });
    const text = await fh.readFile('utf8');
    const racy = Date.now() - Number(st.mtimeNs / 1_000_000n) < RACY_WINDOW_MS;
    return { text, version: { sig: signatureOf(st), racy, digest: createHash('sha256').update(text).digest('base64') } };
  } finally {
    await fh.close();
  }
}

function describeReadError(file: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return `access file ${file} does not exist`;
  if (code === 'EACCES' || code === 'EPERM') return `cannot read access file ${file} (permission denied); make it readable by the user armhook runs as`;
  return `cannot read access file ${file} (${code ?? (err as Error).message})`;
}

/** Loads and validates an access file once (start-up, `armhook check`). Throws AccessFileError. */
export async function loadAccessFile(file: string): Promise<AccessPolicy> {
  let text: string;
  try {
    text = (await readVersion(file)).text;
  } catch (err) {
    throw new AccessFileError(file, [describeReadError(file, err)]);
  }
  return readSecrets(parseAccessFile(text, file), file);
}

export class AccessFile {
  readonly file: string;
  readonly #log: Logger;
  #policy: AccessPolicy;
  #version: Version;
  /** The digest or error of the last version that failed, so each failure is logged once. */
  #lastFailure: string | undefined;
  #pending: Promise<AccessPolicy> | undefined;

  private constructor(file: string, log: Logger, policy: AccessPolicy, version: Version) {
    this.file = file;
    this.#log = log;
    this.#policy = policy;
    this.#version = version;
  }

  /** Loads the file; a missing or broken file at start-up is an error (throws AccessFileError). */
  static async open(file: string, log: Logger): Promise<AccessFile> {
    let read: { text: string; version: Version };
    try {
      read = await readVersion(file);
    } catch (err) {
      throw new AccessFileError(file, [describeReadError(file, err)]);
    }
    const policy = await readSecrets(parseAccessFile(read.text, file), file);
    log.info({ file, signatures: policy.signatures.length }, `loaded access file ${file}`);
    warn(log, file, policy);
    return new AccessFile(file, log, policy, read.version);
  }

  /** The rules in force, re-read first when the file changed. */
  current(): Promise<AccessPolicy> {
    this.#pending ??= this.#refresh().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  async #refresh(): Promise<AccessPolicy> {
    let sig: string;
    try {
      sig = signatureOf(await stat(this.file, { bigint: true }));
    } catch (err) {
      this.#failed(describeReadError(this.file, err));
      return this.#policy;
    }
    if (sig === this.#version.sig && !this.#version.racy) return this.#policy;
    let read: { text: string; version: Version };
    try {
      read = await readVersion(this.file);
    } catch (err) {
      this.#failed(describeReadError(this.file, err));
      return this.#policy;
    }
    // The same text under a new stat (a touch) is read again too: that is how an operator says
    // that a secret file it names has changed.
    if (read.version.digest === this.#version.digest && read.version.sig === this.#version.sig) {
      this.#version = read.version;
      return this.#policy;
    }
    try {
      this.#policy = await readSecrets(parseAccessFile(read.text, this.file), this.file);
    } catch (err) {
      // The broken version is remembered as seen: it is not parsed again until it changes.
      this.#version = read.version;
      this.#failed(err instanceof AccessFileError ? err.message : String(err));
      return this.#policy;
    }
    this.#version = read.version;
    this.#lastFailure = undefined;
    this.#log.info({ file: this.file, signatures: this.#policy.signatures.length }, `access file ${this.file} changed; the new rules are in force`);
    warn(this.#log, this.file, this.#policy);
    return this.#policy;
  }

  #failed(message: string): void {
    if (this.#lastFailure === message) return;
    this.#lastFailure = message;
    this.#log.error({ file: this.file }, `${message}; the last good rules stay in force until the file is fixed (check it with \`armhook check\`)`);
  }
}

function warn(log: Logger, file: string, policy: AccessPolicy): void {
  for (const warning of signatureWarnings(policy)) log.warn({ file }, `access file ${file}: ${warning}`);
}

/**
 * Reads every signature's secret file into the policy. A secret must be a regular file that only
 * its owner (and group) can read, and not empty; the problems name the file, never its content.
 */
export async function readSecrets(policy: AccessPolicy, file: string): Promise<AccessPolicy> {
  const problems: string[] = [];
  for (const spec of policy.signatures) {
    try {
      const fh = await openFile(spec.secretFile, 'r');
      try {
        const st = await fh.stat();
        if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
        if ((st.mode & 0o007) !== 0) {
          problems.push(
            `signatures.${spec.name}: secret file ${spec.secretFile} is readable by everyone (mode ${(st.mode & 0o777).toString(8)}); chmod 0640 it (owner root, group armhook)`,
          );
          continue;
        }
        const secret = (await fh.readFile()).toString('utf8').replace(/\r?\n$/, '');
        if (secret.length === 0) problems.push(`signatures.${spec.name}: secret file ${spec.secretFile} is empty`);
        else spec.secret = Buffer.from(secret, 'utf8');
      } finally {
        await fh.close();
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push(
        `signatures.${spec.name}: cannot read secret file ${spec.secretFile} (${code === 'ENOENT' ? 'it does not exist' : code === 'EACCES' ? 'permission denied: make it readable by the user armhook runs as' : (code ?? (err as Error).message)})`,
      );
    }
  }
  if (problems.length > 0) throw new AccessFileError(file, problems);
  return policy;
}
