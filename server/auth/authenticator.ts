// Basic-auth credential checking against an htpasswd file that may change while the server runs.
//
// - Every call does one async stat of the file; when inode, size, mtime or ctime changed the
//   file is re-read (no watchers, deterministic: an edit is seen by the next call). File
//   timestamps are coarse (a few ms on Linux, more elsewhere), so an in-place edit of the same
//   size right after a read could keep the same signature: while the loaded version is younger
//   than RACY_WINDOW_MS the file is re-read on every call and compared by content (the "racy
//   git" rule). An unchanged content keeps the cache.
// - A missing or unreadable file denies everyone (fail closed) and logs once what to do.
// - Verified credentials are cached for a short time under an HMAC of user and password (random
//   key per instance) so bcrypt does not run on every request. The cache is emptied whenever the
//   file changes, is bounded in size, and only ever holds successes.
// - Hashing runs on a small pool of worker threads with a bound on the checks in flight; past
//   the bound a request is refused at once (AuthBusyError, 503) before anything is hashed.
// - Unknown users cost what known ones cost: each unknown name is checked against a random hash
//   of one class (algorithm and bcrypt cost) present in the file, chosen by a keyed hash of the
//   name with the classes' weights, so a name's timing looks like some real user's.
// - Logs never carry passwords or hashes.

import { createHash, randomBytes } from 'node:crypto';
import { open as openFile, stat } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import type { Logger } from 'pino';
import { AppError, StartupError } from '../errors.ts';
import { dummyHashLike, hashClass, isSupportedHash, parseHtpasswd, unsupportedHashReason, type HtpasswdEntry, type ParseWarning } from './htpasswd.ts';
import { VerifierPool } from './verifier-pool.ts';
import { HmacSha256 } from './hmac.ts';

export interface HtpasswdAuthenticatorOptions {
  /** Path of the htpasswd file. */
  file: string;
  log: Logger;
  /** How long a verified user/password pair is remembered, in ms (default 60000; 0 disables). */
  cacheTtlMs?: number;
  /** Most remembered pairs (default 1000); the oldest is dropped first. */
  cacheMaxEntries?: number;
  /** Clock for the cache (default Date.now). */
  now?: () => number;
  /** Threads that hash passwords (default 1). */
  verifyThreads?: number;
  /** Password checks running or waiting at once; past it requests get a 503 (default 16). */
  maxVerifications?: number;
  /** Replaces the thread pool (tests watch which hashes are checked). */
  verifier?: PasswordVerifier;
}

/** Where hashing happens: VerifierPool's surface. */
export type PasswordVerifier = Pick<VerifierPool, 'tryVerify' | 'close'>;

/** Refused before hashing: `maxVerifications` checks are already running or waiting. */
export class AuthBusyError extends AppError {
  /** @fastify/basic-auth keeps an error's own status (it would make it a 401 otherwise). */
  readonly statusCode = 503;
  constructor() {
    super(
      503,
      'auth_busy',
      'too many password checks are in progress; retry in a second (credentials verified in the last minute are still accepted)',
      undefined,
      {
        retryAfterSeconds: 1,
      },
    );
  }
}

/** The class unknown users are checked against when the file has no usable entry. */
const FALLBACK_HASH_CLASS = '$2y$10$Eq5ZYlaeSdU4bbo2XXG25.5g6zn0w.m/dDn/fNqnFgaff4lPVeTPm';
/** Longer passwords are refused without hashing (bcrypt reads 72 bytes; apr1 cost grows with length). */
const MAX_PASSWORD_BYTES = 4096;
/** htpasswd itself refuses user names longer than this. */
const MAX_USER_LENGTH = 255;
/** Parse warnings logged one by one per load; the rest are counted. */
const MAX_WARNINGS_LOGGED = 20;
/** A version modified less than this before it was read may hide a later edit (see top). */
const RACY_WINDOW_MS = 2000;

export interface AuthenticatorStats {
  /** Real password verifications run (bcrypt/apr1/SHA against a user's entry). */
  verifications: number;
  /** Calls answered from the cache of verified credentials. */
  cacheHits: number;
  /** Verifications against a dummy hash, for unknown users. */
  dummyVerifications: number;
  /** Times a changed file was loaded (the first load included). */
  loads: number;
}

interface Snapshot {
  /** Identity of the file version this was read from (inode, size, mtime, ctime). */
  sig: string;
  /** Modified so shortly before it was read that a same-signature edit may have followed. */
  racy: boolean;
  /** sha256 of the content, to tell a real change from a touch. */
  digest: string;
  /** Every parsed user, first occurrence wins. */
  entries: Map<string, HtpasswdEntry>;
  /** user → hash, only users whose hash form can be verified. */
  usable: Map<string, string>;
  warnings: ParseWarning[];
  /** One text per user whose hash form is unsupported. */
  unsupported: string[];
  /** What unknown users are verified against: one random hash per class, weighted by its users. */
  dummies: DummyHashes;
}

interface DummyHashes {
  /** Users with a usable hash (at least 1). */
  total: number;
  /** Each class's dummy hash and the running count of users up to and including it. */
  classes: { hash: string; upTo: number }[];
}

interface Problem {
  /** errno code, e.g. ENOENT. */
  code: string;
  /** What went wrong and what to do; names the file, never its contents. */
  message: string;
}

function signatureOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

function problemFrom(err: unknown, file: string): Problem {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? 'EUNKNOWN';
  const denied = 'every request is denied until this is fixed';
  switch (code) {
    case 'ENOENT':
      return {
        code,
        message: `htpasswd file ${file} does not exist; ${denied}. Restore it or create a user with \`armhook passwd ${file} <user>\``,
      };
    case 'EACCES':
    case 'EPERM':
      return {
        code,
        message: `cannot read htpasswd file ${file} (permission denied); ${denied}. Make it readable by the user armhook runs as (e.g. chgrp armhook ${file} && chmod 0640 ${file})`,
      };
    case 'EISDIR':
      return { code, message: `htpasswd file ${file} is a directory; ${denied}. Point ARMHOOK_HTPASSWD at a file` };
    case 'ENOTDIR':
      return { code, message: `htpasswd file ${file}: a parent of it is not a directory; ${denied}. Check ARMHOOK_HTPASSWD` };
    default: {
      const detail = err instanceof Error ? err.message : String(err);
      return { code, message: `cannot read htpasswd file ${file} (${detail}); ${denied}` };
    }
  }
}

/** One dummy hash per class of usable entry, weighted by how many users have that class. */
function dummyHashes(usable: Map<string, string>): DummyHashes {
  const counts = new Map<string, { n: number; hash: string }>();
  for (const hash of usable.values()) {
    const cls = hashClass(hash);
    const c = counts.get(cls);
    if (c === undefined) counts.set(cls, { n: 1, hash });
    else c.n++;
  }
  if (counts.size === 0) return { total: 1, classes: [{ hash: dummyHashLike(FALLBACK_HASH_CLASS), upTo: 1 }] };
  let total = 0;
  const classes = [...counts.values()].map(({ n, hash }) => ({ hash: dummyHashLike(hash), upTo: (total += n) }));
  return { total, classes };
}

async function readSnapshot(file: string): Promise<Snapshot | Problem> {
  let text: string;
  let st: BigIntStats;
  let racy: boolean;
  try {
    // stat the open handle so the signature belongs to exactly what is read.
    const fh = await openFile(file, 'r');
    try {
      st = await fh.stat({ bigint: true });
      racy = Date.now() - Number(st.mtimeNs / 1_000_000n) < RACY_WINDOW_MS;
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    return problemFrom(err, file);
  }
  const { entries, warnings } = parseHtpasswd(text);
  const usable = new Map<string, string>();
  const unsupported: string[] = [];
  for (const { user, hash } of entries.values()) {
    if (isSupportedHash(hash)) usable.set(user, hash);
    else unsupported.push(unsupportedHashReason(user, hash, file) ?? `user ${JSON.stringify(user)} cannot be verified`);
  }
  const digest = createHash('sha256').update(text, 'utf8').digest('base64');
  return { sig: signatureOf(st), racy, digest, entries, usable, warnings, unsupported, dummies: dummyHashes(usable) };
}

function isProblem(x: Snapshot | Problem): x is Problem {
  return 'code' in x;
}

function noUsersMessage(file: string, snap: Snapshot): string {
  const base = snap.entries.size === 0 ? `htpasswd file ${file} has no valid user` : `htpasswd file ${file} has no user with a supported password hash`;
  return `${base}; add one with \`armhook passwd ${file} <user>\``;
}

export class HtpasswdAuthenticator {
  readonly file: string;
  readonly #log: Logger;
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #hmac = new HmacSha256(randomBytes(32));

  #snapshot: Snapshot | undefined;
  /** The problem currently in effect (and already logged), if the file could not be read. */
  #problem: Problem | undefined;
  /** Bumped whenever the loaded credentials change; results from older generations are not cached. */
  #generation = 0;
  /** Order of file observations; an older observation never overwrites a newer one. */
  #seq = 0;
  #appliedSeq = 0;
  #refreshing: Promise<void> | undefined;
  /** HMAC(user, password) → expiry time; successes only. Map order = insertion order. */
  readonly #cache = new Map<string, number>();
  /** Verifications in progress, so concurrent identical requests share one bcrypt run. */
  readonly #inflight = new Map<string, Promise<boolean>>();
  readonly #stats: AuthenticatorStats = { verifications: 0, cacheHits: 0, dummyVerifications: 0, loads: 0 };
  readonly #pool: PasswordVerifier;

  constructor(opts: HtpasswdAuthenticatorOptions) {
    this.file = opts.file;
    this.#log = opts.log;
    const ttl = opts.cacheTtlMs ?? 60_000;
    const max = opts.cacheMaxEntries ?? 1000;
    this.#ttlMs = Number.isFinite(ttl) ? Math.max(0, ttl) : 0;
    this.#maxEntries = Number.isFinite(max) ? Math.max(0, Math.floor(max)) : 0;
    this.#now = opts.now ?? Date.now;
    this.#pool = opts.verifier ?? new VerifierPool({ threads: opts.verifyThreads ?? 1, maxInFlight: opts.maxVerifications ?? 16, log: opts.log });
  }

  /**
   * Creates an authenticator and loads the file once. Throws a StartupError saying what to do when
   * the file cannot be read or holds no user that could ever authenticate (start-up prints it as
   * one line, without a stack trace).
   */
  static async open(opts: HtpasswdAuthenticatorOptions): Promise<HtpasswdAuthenticator> {
    const auth = new HtpasswdAuthenticator(opts);
    const seq = ++auth.#seq;
    const result = await readSnapshot(opts.file);
    if (isProblem(result)) throw new StartupError(result.message);
    if (result.usable.size === 0) {
      const why = result.unsupported.length > 0 ? ` (${result.unsupported.join('; ')})` : '';
      throw new StartupError(noUsersMessage(opts.file, result) + why);
    }
    auth.#apply(result, seq);
    return auth;
  }

  /** Stops the verifier threads. */
  async close(): Promise<void> {
    await this.#pool.close();
  }

  /** Counters for diagnostics and metrics (a copy). */
  stats(): AuthenticatorStats {
    return { ...this.#stats };
  }

  /** The user names in the file as last loaded (diagnostics; includes users that cannot log in). */
  users(): string[] {
    return [...(this.#snapshot?.entries.keys() ?? [])];
  }

  /**
   * True when `user` exists in the current file and `password` matches its hash; any doubt (file
   * missing, unreadable, malformed or unsupported entry) is a false. Throws AuthBusyError, having
   * hashed nothing, when the check would need a verifier and too many are in flight.
   */
  async authenticate(user: string, password: string): Promise<boolean> {
    await this.#refresh();
    const snap = this.#snapshot;
    if (snap === undefined) return false;
    if (user.length > MAX_USER_LENGTH || Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) return false;

    const generation = this.#generation;
    const key = this.#cacheKey(user, password);
    if (this.#cached(key)) {
      this.#stats.cacheHits++;
      return true;
    }

    const hash = snap.usable.get(user);
    if (hash === undefined) {
      // Unknown user (or one whose hash cannot be verified): spend comparable time, then deny.
      const checked = this.#verify(password, this.#dummyFor(user, snap.dummies));
      this.#stats.dummyVerifications++;
      await checked;
      return false;
    }

    let pending = this.#inflight.get(key);
    if (pending === undefined) {
      const started = this.#verify(password, hash);
      this.#stats.verifications++;
      pending = started;
      this.#inflight.set(key, started);
      const done = (): void => {
        if (this.#inflight.get(key) === started) this.#inflight.delete(key);
      };
      started.then(done, done);
    }
    const ok = await pending;
    if (ok && generation === this.#generation) this.#remember(key);
    return ok;
  }

  /** Hashes on the pool; throws AuthBusyError when it is full, resolves false if a thread failed. */
  #verify(password: string, hash: string): Promise<boolean> {
    const pending = this.#pool.tryVerify(password, hash);
    if (pending === undefined) throw new AuthBusyError();
    return pending.catch(() => false);
  }

  /** The same class for the same name (keyed, so the choice can't be predicted), weighted by users. */
  #dummyFor(user: string, dummies: DummyHashes): string {
    const pick = this.#hmac.digest(`dummy\0${user}`).readUInt32BE(0) % dummies.total;
    return (dummies.classes.find((c) => pick < c.upTo) ?? dummies.classes[0]!).hash;
  }

  #cacheKey(user: string, password: string): string {
    return this.#hmac.digest(JSON.stringify([user, password]), 'base64');
  }

  #cached(key: string): boolean {
    const expires = this.#cache.get(key);
    if (expires === undefined) return false;
    if (this.#now() < expires) return true;
    this.#cache.delete(key);
    return false;
  }

  #remember(key: string): void {
    if (this.#ttlMs <= 0 || this.#maxEntries <= 0) return;
    this.#cache.delete(key);
    while (this.#cache.size >= this.#maxEntries) {
      const oldest = this.#cache.keys().next();
      if (oldest.done === true) break;
      this.#cache.delete(oldest.value);
    }
    this.#cache.set(key, this.#now() + this.#ttlMs);
  }

  #invalidate(): void {
    this.#generation++;
    this.#cache.clear();
    this.#inflight.clear();
  }

  /**
   * One stat, shared by the checks that arrive while it runs (they continue in the order they
   * came, and a burst of requests costs one stat, not one each); re-reads the file when it is not
   * the version loaded.
   */
  #refresh(): Promise<void> {
    this.#refreshing ??= this.#statAndLoad().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async #statAndLoad(): Promise<void> {
    const seq = ++this.#seq;
    let st: BigIntStats;
    try {
      st = await stat(this.file, { bigint: true });
    } catch (err) {
      this.#apply(problemFrom(err, this.file), seq);
      return;
    }
    const sig = signatureOf(st);
    const current = this.#snapshot;
    if (current !== undefined && current.sig === sig && !current.racy) return;
    this.#apply(await readSnapshot(this.file), seq);
  }

  #apply(result: Snapshot | Problem, seq: number): void {
    if (seq < this.#appliedSeq) return; // a newer observation already won
    this.#appliedSeq = seq;
    if (isProblem(result)) {
      const wasOk = this.#snapshot !== undefined;
      this.#snapshot = undefined;
      if (wasOk) this.#invalidate();
      if (this.#problem?.message !== result.message) {
        this.#problem = result;
        this.#log.error({ file: this.file, code: result.code }, result.message);
      }
      return;
    }
    const current = this.#snapshot;
    if (current !== undefined && current.digest === result.digest) {
      // Same content (a touch, a chmod, or a racy re-read): keep the credentials and the cache.
      current.sig = result.sig;
      current.racy = result.racy;
      return;
    }
    this.#snapshot = result;
    this.#invalidate();
    this.#stats.loads++;
    if (this.#problem !== undefined) {
      this.#log.info({ file: this.file }, `htpasswd file ${this.file} is readable again`);
      this.#problem = undefined;
    }
    this.#logLoad(result);
  }

  #logLoad(snap: Snapshot): void {
    const log = this.#log;
    const file = this.file;
    snap.warnings.slice(0, MAX_WARNINGS_LOGGED).forEach((w) => {
      log.warn({ file, line: w.line }, `htpasswd file ${file}: ${w.message}`);
    });
    if (snap.warnings.length > MAX_WARNINGS_LOGGED) {
      log.warn({ file }, `htpasswd file ${file}: ${snap.warnings.length - MAX_WARNINGS_LOGGED} more malformed lines skipped`);
    }
    for (const reason of snap.unsupported) log.warn({ file }, `htpasswd file ${file}: ${reason}`);
    if (snap.usable.size === 0) {
      log.error({ file }, `${noUsersMessage(file, snap)}; every request is denied`);
    } else {
      log.info({ file, users: snap.usable.size }, `loaded htpasswd file ${file} (${snap.usable.size} user(s))`);
    }
  }
}
