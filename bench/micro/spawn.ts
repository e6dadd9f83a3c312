/**
 * The spawn path alone, side by side in one run: N short scripts (`echo hello`, the dispatch
 * scenario's hook) with a job-sized environment, 16 at a time, started
 *   - helper: through the spawn helper (server/hooks/spawner.py, posix_spawn), as armhook does;
 *   - node:   through execa from this process (ARMHOOK_SPAWNER=node), the fallback.
 * Reports spawns/s and CPU per spawn: this process (the server's side), the helper process, and
 * the scripts themselves (reaped children's CPU). No HTTP, no job storage.
 *
 *   node bench/micro/spawn.ts [runs]          (default 3000 per spawner, alternating in rounds)
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { runScript, type ScriptRunOptions } from '../../server/hooks/runner.ts';
import { SpawnHelper } from '../../server/hooks/spawn-helper.ts';

const RUNS = Number(process.argv[2] ?? 3000);
const CONCURRENCY = 16;
const ROUNDS = 3;

/** utime+stime and cutime+cstime of a process, in ms (from /proc/<pid>/stat, clock ticks of 10 ms). */
function cpuOf(pid: number | 'self'): { own: number; children: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  // Fields after the command: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
  return { own: ((f[11] ?? 0) + (f[12] ?? 0)) * 10, children: ((f[13] ?? 0) + (f[14] ?? 0)) * 10 };
}

function helperPid(): number | undefined {
  // The helper is this process's python3 child.
  for (const line of readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(/\s+/)) {
    const pid = Number(line);
    if (pid > 0 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('spawner.py')) return pid;
  }
  return undefined;
}

const dir = mkdtempSync(join(tmpdir(), 'armhook-spawn-bench-'));
const script = join(dir, 'echo.sh');
writeFileSync(script, '#!/bin/sh\necho hello\n', { mode: 0o755 });
const env: Record<string, string> = {
  PATH: '/usr/local/bin:/usr/bin:/bin',
  HOME: dir,
  LANG: 'C.UTF-8',
  ARMHOOK_JOB_ID: '01KAAAAAAAAAAAAAAAAAAAAAAA',
  ARMHOOK_HOOK: 'echo',
};
for (let i = 0; i < 20; i++) env[`PARAM_${i}`] = `value-${i}-${'x'.repeat(20)}`;

type Run = (options: ScriptRunOptions) => Promise<unknown>;
const helper = SpawnHelper.create(pino({ level: 'silent' }));
if (!helper) throw new Error('no python3: the helper cannot run here');
const spawners: Array<{ name: string; run: Run; totals: { ms: number; node: number; helper: number; scripts: number } }> = [
  { name: 'helper', run: (o) => helper.run(o), totals: { ms: 0, node: 0, helper: 0, scripts: 0 } },
  { name: 'node', run: (o) => runScript(o), totals: { ms: 0, node: 0, helper: 0, scripts: 0 } },
];

async function batch(run: Run, count: number): Promise<void> {
  let started = 0;
  let output = 0;
  const worker = async (): Promise<void> => {
    while (started < count) {
      started++;
      await run({
        file: script,
        cwd: dir,
        env,
        stdin: Buffer.alloc(0),
        signal: new AbortController().signal,
        killGraceMs: 2000,
        onStart() {},
        onOutput: (_s, chunk) => void (output += chunk.length),
      });
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  if (output !== count * 6) throw new Error(`expected ${count * 6} bytes of output, got ${output}`);
}

try {
  for (const s of spawners) await batch(s.run, 50); // warm-up (starts the helper, loads execa)
  const hp = helperPid();
  for (let round = 0; round < ROUNDS; round++) {
    for (const s of spawners) {
      const self0 = cpuOf('self');
      const helper0 = hp ? cpuOf(hp) : { own: 0, children: 0 };
      const t0 = performance.now();
      await batch(s.run, Math.round(RUNS / ROUNDS));
      s.totals.ms += performance.now() - t0;
      const self1 = cpuOf('self');
      const helper1 = hp ? cpuOf(hp) : { own: 0, children: 0 };
      s.totals.node += self1.own - self0.own;
      s.totals.helper += helper1.own - helper0.own;
      s.totals.scripts += self1.children - self0.children + (helper1.children - helper0.children);
    }
  }
  const runs = Math.round(RUNS / ROUNDS) * ROUNDS;
  console.log(`${runs} runs per spawner of ${script} (20-variable environment), ${CONCURRENCY} at a time, ${ROUNDS} alternating rounds; CPU in ms per spawn`);
  console.log('spawner   spawns/s   server   (node + helper)   scripts');
  for (const s of spawners) {
    const per = (v: number): string => (v / runs).toFixed(3);
    console.log(
      `${s.name.padEnd(8)} ${Math.round((runs / s.totals.ms) * 1000)
        .toString()
        .padStart(
          9,
        )}   ${per(s.totals.node + s.totals.helper).padStart(6)}   (${per(s.totals.node)} + ${per(s.totals.helper)})   ${per(s.totals.scripts).padStart(7)}`,
    );
  }
} finally {
  helper.close();
  rmSync(dir, { recursive: true, force: true });
}
