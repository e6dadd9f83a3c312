import { buildApp } from '../app.ts';
import type { Config } from '../config/index.ts';
import type { Logger } from '../log/index.ts';

/** `armhook serve`: build, listen, and drain jobs on SIGTERM/SIGINT before exiting. */
export async function serve(config: Config, log: Logger): Promise<number> {
  const armhook = await buildApp(config, { log });
  const url = await armhook.listen();
  log.info(
    { url, scriptsDir: config.scriptsDir, dataDir: config.dataDir, auth: config.htpasswd ? 'htpasswd' : 'none (loopback only)' },
    `armhook listening on ${url}`,
  );
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting now; running jobs will be marked interrupted at next start');
        resolve(1);
        return;
      }
      stopping = true;
      log.info({ signal, drainTimeout: config.drainTimeout }, 'stopping: no new jobs; running jobs get the drain timeout to finish');
      armhook.close().then(
        () => resolve(0),
        (err: unknown) => {
          log.error({ err }, 'error while stopping');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
