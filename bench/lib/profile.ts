/**
 * BENCH_PROFILE=1: the dispatch scenario's armhook runs with `node --cpu-prof` (through
 * NODE_OPTIONS, which bin/armhook passes on; scripts never inherit it). The profile is written when
 * armhook exits after SIGTERM; this sums its samples by function (self time) for the notes. Open
 * the .cpuprofile in Chrome DevTools (Performance → Load profile) for the whole picture.
 */
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
}

export function profileEnv(dir: string): Record<string, string> {
  mkdirSync(dir, { recursive: true });
  return { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}` };
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
export function topSelf(file: string, root: string, n = 12): string[] {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
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
