#!/usr/bin/env node
// The CLI's entry point. Node's on-disk compile cache is turned on before anything else loads,
// so later starts skip most of the parsing and compiling of armhook and its dependencies.
import { enableCompileCache } from 'node:module';

enableCompileCache?.();
// The client commands (call, jobs, logs, cancel) talk to a server over HTTP: they load neither
// fastify nor the server's modules, so a pipeline step starts in a fraction of the time.
const command = process.argv[2];
if (command === 'call' || command === 'jobs' || command === 'logs' || command === 'cancel') {
  const { runClientCommand } = await import('./client/commands.ts');
  process.exitCode = await runClientCommand(command, process.argv.slice(3));
} else {
  await import('./cli.ts');
}
