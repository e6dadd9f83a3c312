import { accessSync, closeSync, constants, openSync, readdirSync, readSync, realpathSync, statSync, type Stats } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { Logger } from 'pino';
import { AppError, quote } from '../errors.ts';
import { parseScriptHeader, type ScriptHeader } from './header.ts';

/** Top-level names that belong to armhook itself; no script may shadow them. */
export const RESERVED_NAMES = ['healthz', 'readyz', 'metrics', 'jobs', 'hooks', 'azure', 'openapi.json', 'ui'] as const;

/** A directory of the scripts dir as last listed: its sorted names. */
interface Listing {
  key: string;
  entries: string[];
}

/** A script that can run as a hook. */
export interface ScriptHook {
  kind: 'script';
  /** URL path without the leading slash, e.g. "vm/create". */
  path: string;
  /** Absolute, real path of the executable. */
  file: string;
  header: ScriptHeader;
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;
const HEADER_BYTES = 16 * 1024;

/**
 * Validates a hook path as it came on the wire (without the leading slash). Only plain names
 * are accepted: no percent-encoding at all (so no encoded or double-encoded traversal), no
 * empty segments, no segment starting with a dot (no `..`, no dotfiles).
 */
export function parseHookPath(rawPath: string): string[] {
  const segments = rawPath.split('/');
  for (const segment of segments) {
    if (!SEGMENT.test(segment)) {
      throw new AppError(
        404,
        'unknown_hook',
        `no hook at ${quote(`/${rawPath}`)}: hook paths are plain names (letters, digits, "_", "-", "."; not starting with "."; no encoded characters)`,
      );
    }
  }
  return segments;
}

/**
 * The scripts directory as a catalog. Only parsed headers (keyed by file identity and times) and
 * directory listings (keyed by the directory's) are cached, so new, removed and edited scripts
 * are picked up without a restart.
 */
export class HookCatalog {
  readonly scriptsDir: string;
  readonly #log: Logger;
  readonly #headers = new Map<string, { key: string; header: ScriptHeader }>();
  /** Directory listings (only of directories that exist under the scripts dir). */
  readonly #listings = new Map<string, Listing>();

  constructor(options: { scriptsDir: string; log: Logger }) {
    this.scriptsDir = options.scriptsDir;
    this.#log = options.log;
  }

  /** Problems that must stop start-up: a missing scripts dir, reserved names shadowed. */
  async startupProblems(): Promise<string[]> {
    const problems: string[] = [];
    let entries: string[];
    try {
      entries = await readdir(this.scriptsDir);
    } catch (err) {
      return [`scripts directory ${this.scriptsDir} is not readable (${(err as NodeJS.ErrnoException).code ?? String(err)}); set ARMHOOK_SCRIPTS_DIR`];
    }
    for (const entry of entries) {
      const stem = entry.startsWith('.') ? entry : entry.replace(/\.[^.]*$/, '');
      if ((RESERVED_NAMES as readonly string[]).includes(stem) || (RESERVED_NAMES as readonly string[]).includes(entry)) {
        problems.push(`${join(this.scriptsDir, entry)} would shadow armhook's own /${stem}; rename or move it (reserved: ${RESERVED_NAMES.join(', ')})`);
      }
    }
    return problems;
  }

  /**
   * Finds the hook for a URL path, or undefined. Throws AppError for a path that is not a
   * plain name, and for a script whose header is invalid (nothing runs).
   */
  async resolve(rawPath: string): Promise<ScriptHook | undefined> {
    const segments = parseHookPath(rawPath);
    if ((RESERVED_NAMES as readonly string[]).includes(segments[0] ?? '')) return undefined;
    const base = segments.at(-1) ?? '';
    const dir = join(this.scriptsDir, ...segments.slice(0, -1));
    const listing = this.#listing(dir);
    if (!listing) return undefined;
    for (const name of candidates(listing.entries, base)) {
      const hook = this.#load(join(dir, name), segments.join('/'));
      if (hook) return hook;
    }
    return undefined;
  }

  /** Every hook under the scripts directory, sorted by path. Invalid headers are reported, not hidden. */
  async list(): Promise<Array<ScriptHook | { kind: 'invalid'; path: string; file: string; error: string }>> {
    const out: Array<ScriptHook | { kind: 'invalid'; path: string; file: string; error: string }> = [];
    const seen = new Set<string>();
    const walk = async (dir: string, prefix: string[], depth: number): Promise<void> => {
      if (depth > 8) return;
      let entries: string[];
      try {
        entries = (await readdir(dir)).sort();
      } catch {
        return;
      }
      for (const entry of entries) {
        if (!SEGMENT.test(entry)) continue;
        const full = join(dir, entry);
        let info: Stats;
        try {
          info = await stat(full);
        } catch {
          continue;
        }
        if (info.isDirectory()) {
          if (depth === 0 && (RESERVED_NAMES as readonly string[]).includes(entry)) continue;
          await walk(full, [...prefix, entry], depth + 1);
          continue;
        }
        const stem = entry.endsWith('.sh') ? entry.slice(0, -3) : entry.replace(/\.[^.]*$/, '') || entry;
        const path = [...prefix, stem].join('/');
        if (seen.has(path) || !SEGMENT.test(stem)) continue;
        try {
          const hook = await this.resolve(path);
          if (hook) {
            seen.add(path);
            out.push(hook);
          }
        } catch (err) {
          seen.add(path);
          out.push({ kind: 'invalid', path, file: full, error: (err as Error).message });
        }
      }
    };
    await walk(this.scriptsDir, [], 0);
    return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /**
   * A directory's names, listed again only when the directory changed (its identity or times) or
   * changed recently (times move in coarse ticks). Synchronous on purpose: metadata lookups the
   * kernel answers from its caches in microseconds, while the thread pool may be busy; one stat
   * instead of a listing per request. Real paths are not cached: a parent directory moved and
   * replaced by a symlink keeps the listed directory's identity, and must still be refused.
   */
  #listing(dir: string): Listing | undefined {
    try {
      const info = statSync(dir);
      const key = `${info.dev}:${info.ino}:${info.mtimeMs}:${info.ctimeMs}`;
      const cached = this.#listings.get(dir);
      if (cached && cached.key === key && Date.now() - info.ctimeMs >= 2000) return cached;
      const listing: Listing = { key, entries: readdirSync(dir).sort() };
      this.#listings.set(dir, listing);
      return listing;
    } catch {
      this.#listings.delete(dir);
      return undefined;
    }
  }

  #load(candidate: string, path: string): ScriptHook | undefined {
    let real: string;
    let root: string;
    let info: Stats;
    try {
      real = realpathSync.native(candidate);
      root = realpathSync.native(this.scriptsDir);
      info = statSync(real);
    } catch {
      return undefined;
    }
    // A symlink may point elsewhere inside the scripts dir, never outside it.
    if (
      !real.startsWith(root + sep) ||
      relative(root, real)
        .split(sep)
        .some((s) => s.startsWith('.'))
    ) {
      this.#log.warn({ hook: path }, 'hook refused: the script resolves outside the scripts directory (symlink escape); remove the link');
      return undefined;
    }
    if (!info.isFile()) return undefined;
    try {
      accessSync(real, constants.X_OK);
    } catch {
      this.#log.warn({ hook: path }, 'hook ignored: the script is not executable; run chmod +x on it');
      return undefined;
    }
    // File times move in coarse ticks, so an edit of the same size right after another could
    // keep its key: a file changed in the last two seconds is always read again.
    const key = `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
    let cached = this.#headers.get(real);
    if (!cached || cached.key !== key || Date.now() - info.ctimeMs < 2000) {
      const fd = openSync(real, 'r');
      try {
        const buffer = Buffer.alloc(HEADER_BYTES);
        const bytesRead = readSync(fd, buffer, 0, HEADER_BYTES, 0);
        cached = { key, header: parseScriptHeader(buffer.subarray(0, bytesRead).toString('utf8'), relative(root, real)) };
      } finally {
        closeSync(fd);
      }
      this.#headers.set(real, cached);
    }
    return { kind: 'script', path, file: real, header: cached.header };
  }
}

/**
 * Files that can serve `base`: base.sh first, then base itself (a file without extension), then
 * base.<any extension> (in name order: `entries` is sorted). A hook path never includes the
 * extension: /hello.sh is not hello.sh.
 */
function candidates(entries: readonly string[], base: string): string[] {
  const out: string[] = [];
  if (entries.includes(`${base}.sh`)) out.push(`${base}.sh`);
  if (!base.includes('.') && entries.includes(base)) out.push(base);
  for (const entry of entries) {
    if (!base.includes('.') && entry !== `${base}.sh` && entry.startsWith(`${base}.`) && !entry.slice(base.length + 1).includes('.')) out.push(entry);
  }
  return out;
}
