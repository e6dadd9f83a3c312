/**
 * BENCH_PROFILE=1: the dispatch and typed scenarios' armhook runs with `node --cpu-prof` (through
 * NODE_OPTIONS, which bin/armhook passes on; scripts never inherit it). The profile is written when
 * armhook exits after SIGTERM; this sums its samples by function (self time), and by where the
 * code comes from (a package, a server/ folder, Node itself), for the notes. Open the .cpuprofile
 * in Chrome DevTools (Performance → Load profile) for the whole picture.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { SourceMap, type SourceMapPayload } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ScenarioOutput } from './context.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
  hitCount?: number;
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

/** A scenario's profiling: the env for its armhook, and what to put in the report after the run. */
export interface Profiling {
  /** NODE_OPTIONS for armhook when profiling, else undefined. */
  env: Record<string, string> | undefined;
  /** After armhook stopped: the profile's summaries into `out` (no-op when not profiling). */
  report(out: ScenarioOutput, over: string): void;
}

export function startProfiling(enabled: boolean, benchDir: string, root: string): Profiling {
  const dir = join(benchDir, 'profiles');
  const since = Date.now();
  return {
    env: enabled ? profileEnv(dir) : undefined,
    report(out, over) {
      if (!enabled) return;
      const file = newestProfile(dir, since);
      if (!file) {
        out.notes.push(`BENCH_PROFILE=1 but no .cpuprofile appeared in ${dir} (armhook did not exit normally?).`);
        return;
      }
      const profile = readProfile(file);
      const top = topSelf(profile, root);
      const origins = selfByOrigin(profile, root);
      out.raw['profile'] = { file, topSelf: top, byOrigin: origins };
      out.notes.push(
        `**Profiled run** (BENCH_PROFILE=1: armhook under --cpu-prof, figures lower than usual): ${file}; top self time over ${over}: ${top.slice(0, 8).join('; ')}. Busy time by origin: ${origins.slice(0, 8).join('; ')}.`,
      );
    },
  };
}

export function profileEnv(dir: string): Record<string, string> {
  mkdirSync(dir, { recursive: true });
  return { NODE_OPTIONS: `${process.env['BENCH_NODE_OPTIONS'] ?? ''} --cpu-prof --cpu-prof-dir=${dir}`.trim() };
}

/** The newest .cpuprofile in dir written after `since` (ms since epoch). */
export function newestProfile(dir: string, since: number): string | undefined {
  let best: { file: string; mtime: number } | undefined;
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.cpuprofile')) continue;
    const file = join(dir, name);
    const mtime = statSync(file).mtimeMs;
    if (mtime >= since && (!best || mtime > best.mtime)) best = { file, mtime };
  }
  return best?.file;
}

/** Top functions by self time: "12.3% fn (file:line)". */
export function readProfile(file: string): CpuProfile {
  return JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
}

export function topSelf(p: CpuProfile, root: string, n = 12): string[] {
  const total = p.nodes.reduce((s, node) => s + (node.hitCount ?? 0), 0);
  const byFn = new Map<string, number>();
  for (const node of p.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? `${relative(root, url.replace(/^file:\/\//, ''))}:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'}${where ? ` (${where})` : ''}`;
    byFn.set(key, (byFn.get(key) ?? 0) + (node.hitCount ?? 0));
  }
  return [...byFn.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${((v / Math.max(1, total)) * 100).toFixed(1)}% ${k}`);
}

/**
 * Busy time (idle excluded) by origin: "38.0% @azure/core-rest-pipeline". Frames of the bundled
 * dist/ are traced back through its source maps to the file esbuild took them from.
 */
export function selfByOrigin(p: CpuProfile, root: string, n = 12): string[] {
  const maps = new Map<string, SourceMap | undefined>();
  const mapFor = (path: string): SourceMap | undefined => {
    if (!maps.has(path)) {
      const mapFile = `${path}.map`;
      maps.set(path, existsSync(mapFile) ? new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8')) as SourceMapPayload) : undefined);
    }
    return maps.get(path);
  };
  const origin = (frame: ProfileNode['callFrame']): string => {
    if (frame.url === '') return frame.functionName.startsWith('(') ? frame.functionName : 'native (V8 builtins, TLS, fs, libuv)';
    if (frame.url.startsWith('node:')) return 'Node.js internals (JavaScript)';
    if (!frame.url.startsWith('file://')) return frame.url;
    let path = fileURLToPath(frame.url);
    const entry = mapFor(path)?.findEntry(frame.lineNumber, frame.columnNumber ?? 0);
    if (entry && 'originalSource' in entry && entry.originalSource) {
      const source = entry.originalSource;
      path = source.startsWith('file://') ? fileURLToPath(source) : resolve(dirname(path), source);
    }
    const rel = relative(root, path);
    const pkg = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(rel);
    if (pkg) return pkg[1] ?? rel;
    const concern = /^server\/([^/]+)\//.exec(rel);
    return concern ? `armhook server/${concern[1]}` : rel;
  };
  const byOrigin = new Map<string, number>();
  let busy = 0;
  for (const node of p.nodes) {
    const hits = node.hitCount ?? 0;
    if (hits === 0 || node.callFrame.functionName === '(idle)') continue;
    const key = origin(node.callFrame);
    byOrigin.set(key, (byOrigin.get(key) ?? 0) + hits);
    busy += hits;
  }
  return [...byOrigin.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${((v / Math.max(1, busy)) * 100).toFixed(1)}% ${k}`);
}
