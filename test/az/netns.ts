/**
 * Runs a test file inside a network namespace that has only loopback, where the machine allows
 * one (root, or unprivileged user namespaces): nothing the file starts can reach another host.
 */
import { spawnSync } from 'node:child_process';

const MARK = 'ARMHOOK_TEST_NETNS';

/**
 * Call at the top of a test file, before any test is declared. Outside a namespace, it runs the
 * file again inside a new one (`unshare -n`, loopback up) with the same output channel to the
 * test runner, and exits with its status; inside, or where no namespace can be made, it returns
 * a line saying which, for the tests' diagnostics.
 */
export function isolatedNetwork(file: string): string {
  const state = process.env[MARK];
  if (state === 'isolated') return 'network: a namespace of its own with only loopback (unshare -n)';
  if (state !== undefined) return `network: NOT isolated (${state}); the recording proxy still refuses everything but loopback`;
  const flags = process.getuid?.() === 0 ? ['--net'] : ['--net', '--map-root-user'];
  const probe = spawnSync('unshare', [...flags, 'ip', 'link', 'set', 'lo', 'up'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    const reason = probe.error ? `${probe.error.message}` : probe.stderr.trim() || `unshare exited ${probe.status}`;
    process.env[MARK] = `unshare ${flags.join(' ')} is not allowed here: ${reason}`;
    return isolatedNetwork(file);
  }
  // NODE_TEST_CONTEXT (inherited) makes the inner run report to the test runner on stdout.
  const inner = spawnSync('unshare', [...flags, '--', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', process.execPath, file], {
    stdio: 'inherit',
    env: { ...process.env, [MARK]: 'isolated' },
  });
  process.exit(inner.status ?? 1);
}
