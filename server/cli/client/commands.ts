import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { EXIT, EXIT_HELP, exitCodeForJob, exitCodeForRefusal } from './exit-codes.ts';
import { consumeEvents, followJob, RefusedError, type JobSummary, type Position, type Sink } from './follow.ts';
import { ConnectionError, readJson, ServerClient, type ClientOptions } from './http.ts';

const CONNECTION_HELP = `Connection (flags win over the environment):
  --user <name:password>   basic auth (ARMHOOK_USER; a name alone takes its password from ARMHOOK_PASSWORD)
  --token <token>          a bearer token instead (ARMHOOK_TOKEN)
  --cacert <file.pem>      trust this CA instead of the system's (ARMHOOK_CACERT)
  --insecure               do not verify the server's certificate (tests only)
`;

export const CLIENT_HELP: Record<string, string> = {
  call: `armhook call <url> [name=value ...] [options]

Runs the hook at <url> (e.g. https://runner.example.com/vm/create) with the parameters given (in
the query; read-only typed handlers such as /azure/whoami on GET) and streams its output as it runs: stdout lines to stdout, stderr lines to stderr, armhook's own notes
(queued, progress, reconnecting) to stderr prefixed "armhook:". A dropped connection is resumed
through /jobs/<id>/events with Last-Event-ID: no line is lost or repeated. Exits with the job's
outcome (below), so a pipeline step fails exactly when the script fails.

Options:
  --async                  start the job and print its id (the 202 answer with --json); do not wait
  --json                   print the final job record as JSON on stdout (output lines go to stderr)
  --body <file>            send this file as the request body, the script's stdin ("-": this stdin)
  --timeout <seconds>      a shorter timeout for this job than the hook's (X-Hook-Timeout)
${CONNECTION_HELP}
${EXIT_HELP}`,
  jobs: `armhook jobs [--server <url>] [--hook h] [--status s] [--caller c] [--limit n] [--after id] [--json]

Lists jobs, newest first, with their status. --server (ARMHOOK_URL) is the server's base URL.
${CONNECTION_HELP}`,
  logs: `armhook logs <id|job url> [--follow] [--server <url>]

Prints a job's output so far. With --follow, streams it until the job ends (stdout lines to
stdout, stderr lines to stderr, resuming after a dropped connection) and exits with the job's
outcome, as armhook call does.
${CONNECTION_HELP}
${EXIT_HELP}`,
  cancel: `armhook cancel <id|job url> [--server <url>] [--json]

Cancels a queued or running job and waits until it has ended. Exits 0 when it was cancelled,
65 when it had already ended.
${CONNECTION_HELP}`,
};

const CONNECTION_OPTIONS = {
  user: { type: 'string' },
  token: { type: 'string' },
  cacert: { type: 'string' },
  insecure: { type: 'boolean' },
  server: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const COMMAND_OPTIONS = {
  call: { ...CONNECTION_OPTIONS, async: { type: 'boolean' }, body: { type: 'string' }, timeout: { type: 'string' } },
  jobs: {
    ...CONNECTION_OPTIONS,
    hook: { type: 'string' },
    status: { type: 'string' },
    caller: { type: 'string' },
    limit: { type: 'string' },
    after: { type: 'string' },
  },
  logs: { ...CONNECTION_OPTIONS, follow: { type: 'boolean', short: 'f' } },
  cancel: CONNECTION_OPTIONS,
} as const satisfies Record<string, ParseArgsConfig['options']>;

export type ClientCommand = keyof typeof COMMAND_OPTIONS;
export const CLIENT_COMMANDS = Object.keys(COMMAND_OPTIONS) as ClientCommand[];

/** Wrong arguments: exit 2 with the message. */
class UsageError extends Error {}

type Values = Record<string, string | boolean | undefined>;

function clientOptions(values: Values, env: NodeJS.ProcessEnv): ClientOptions {
  let user = (values.user as string | undefined) ?? env.ARMHOOK_USER;
  if (user && !user.includes(':')) {
    if (env.ARMHOOK_PASSWORD === undefined) throw new UsageError(`--user ${user}: give name:password, or set ARMHOOK_PASSWORD`);
    user = `${user}:${env.ARMHOOK_PASSWORD}`;
  }
  const token = (values.token as string | undefined) ?? env.ARMHOOK_TOKEN;
  const cacert = (values.cacert as string | undefined) ?? env.ARMHOOK_CACERT;
  return { ...(user ? { user } : {}), ...(token ? { token } : {}), ...(cacert ? { cacert } : {}), insecure: values.insecure === true };
}

function parseUrl(text: string, what: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${what} ${JSON.stringify(text)} is not a URL (e.g. https://runner.example.com)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`${what} must be an https:// URL`);
  return url;
}

/** The server's base URL (ending in /) from --server or ARMHOOK_URL. */
function serverBase(values: Values, env: NodeJS.ProcessEnv): URL {
  const text = (values.server as string | undefined) ?? env.ARMHOOK_URL;
  if (!text) throw new UsageError('say which server: --server https://<host>[:port] or ARMHOOK_URL');
  const url = parseUrl(text, '--server');
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  url.search = '';
  return url;
}

/** A job named by its id (with --server) or by a URL of it (…/jobs/<id> or …/ui/jobs/<id>). */
function jobTarget(arg: string | undefined, values: Values, env: NodeJS.ProcessEnv): { base: URL; id: string } {
  if (!arg) throw new UsageError('which job? give its id (armhook jobs lists them) or its URL');
  if (/^https?:\/\//.test(arg)) {
    const url = parseUrl(arg, 'job URL');
    const match = /^(.*?\/)(?:ui\/)?jobs\/([^/]+)\/?$/.exec(url.pathname);
    if (!match) throw new UsageError(`${arg} is not the URL of a job (…/jobs/<id>)`);
    url.pathname = match[1] ?? '/';
    url.search = '';
    return { base: url, id: decodeURIComponent(match[2] ?? '') };
  }
  return { base: serverBase(values, env), id: arg };
}

/** Terminal output with backpressure: a slow pipe pauses the stream instead of filling memory. */
function terminalSink(json: boolean): Sink {
  const out = json ? process.stderr : process.stdout;
  return {
    stdout: (line) => out.write(`${line}\n`),
    stderr: (line) => process.stderr.write(`${line}\n`),
    note: (text) => process.stderr.write(`armhook: ${text}\n`),
    drained: () => Promise.all([waitDrain(out), waitDrain(process.stderr)]).then(() => undefined),
  };
}

function waitDrain(stream: NodeJS.WriteStream): Promise<void> {
  return stream.writableNeedDrain ? new Promise((resolve) => stream.once('drain', () => resolve())) : Promise.resolve();
}

function finish(record: JobSummary, json: boolean): number {
  if (json) process.stdout.write(`${JSON.stringify(record)}\n`);
  else if (record.status !== 'succeeded' && record.status !== 'failed')
    process.stderr.write(`armhook: job ${record.id} ${record.status}${record.error ? `: ${record.error.message}` : ''}\n`);
  return exitCodeForJob(record);
}

function bodyFrom(file: string | undefined): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file === '-' ? 0 : file);
  } catch (err) {
    throw new UsageError(`--body ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

async function call(client: ServerClient, args: string[], values: Values): Promise<number> {
  const [target, ...pairs] = args;
  if (!target) throw new UsageError('usage: armhook call <url> [name=value ...]');
  const url = parseUrl(target, 'the hook URL');
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`"${pair}" is not name=value`);
    url.searchParams.append(pair.slice(0, eq), pair.slice(eq + 1));
  }
  const json = values.json === true;
  const headers: Record<string, string> = { Accept: values.async ? 'application/json' : 'text/event-stream' };
  if (values.async) headers.Prefer = 'respond-async';
  if (values.timeout !== undefined) headers['X-Hook-Timeout'] = String(values.timeout);
  const body = bodyFrom(values.body as string | undefined);
  if (body) headers['Content-Type'] = 'application/octet-stream';

  let answer = await client.request('POST', url, headers, body);
  // Read-only typed handlers (azure/whoami, lists) run on GET: their 405 says so, and ran nothing.
  const allow = String(answer.headers.allow ?? '');
  if (answer.status === 405 && /\bGET\b/.test(allow) && !/\bPOST\b/.test(allow) && !body) {
    answer.body.resume();
    answer = await client.request('GET', url, headers);
  }
  if (answer.status >= 300) throw new RefusedError(answer.status, await readJson(answer.body));
  if (values.async) {
    const accepted = (await readJson(answer.body)) as { jobId: string };
    process.stdout.write(json ? `${JSON.stringify(accepted)}\n` : `${accepted.jobId}\n`);
    return EXIT.succeeded;
  }
  const sink = terminalSink(json);
  const position: Position = { jobId: String(answer.headers['armhook-job-id'] ?? ''), lastId: 0 };
  // Jobs outlive their callers: Ctrl-C leaves this one running and says how to stop it.
  process.once('SIGINT', () => {
    process.stderr.write(
      `\narmhook: job ${position.jobId} keeps running; \`armhook cancel ${position.jobId}\` stops it, \`armhook logs ${position.jobId} --follow\` watches it again\n`,
    );
    process.exit(130);
  });
  const done = await consumeEvents(answer.body, position, sink);
  if (done) return finish(done, json);
  if (!position.jobId) throw new ConnectionError('the connection dropped before the server named the job; see `armhook jobs` for whether it started');
  sink.note(`connection lost; resuming job ${position.jobId} after event ${position.lastId}`);
  const base = new URL('/', url);
  return finish(await followJob(client, base, position, sink), json);
}

async function jobs(client: ServerClient, _args: string[], values: Values): Promise<number> {
  const url = new URL('jobs', serverBase(values, process.env));
  for (const name of ['hook', 'status', 'caller', 'limit', 'after'] as const) if (typeof values[name] === 'string') url.searchParams.set(name, values[name]);
  const answer = await client.json<{ items: JobSummary[]; next: string | null }>('GET', url);
  if (answer.status !== 200) throw new RefusedError(answer.status, answer.body);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(answer.body)}\n`);
    return EXIT.succeeded;
  }
  const rows = answer.body.items.map((job) => [
    job.id,
    job.status,
    job.hook,
    textOf(job.caller),
    textOf(job.createdAt),
    job.durationMs == null ? '' : `${((job.durationMs as number) / 1000).toFixed(1)}s`,
  ]);
  const table = [['ID', 'STATUS', 'HOOK', 'CALLER', 'CREATED', 'DURATION'], ...rows];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => (row[i] ?? '').length)));
  for (const row of table)
    process.stdout.write(
      `${row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd()}\n`,
    );
  const after = answer.body.next ? new URL(answer.body.next, url).searchParams.get('after') : null;
  if (after) process.stderr.write(`armhook: more jobs: armhook jobs --after ${after}\n`);
  return EXIT.succeeded;
}

async function logs(client: ServerClient, args: string[], values: Values): Promise<number> {
  const { base, id } = jobTarget(args[0], values, process.env);
  if (values.follow) return finish(await followJob(client, base, { jobId: id, lastId: 0 }, terminalSink(false)), values.json === true);
  const answer = await client.request('GET', new URL(`jobs/${encodeURIComponent(id)}/log`, base), { Accept: 'text/plain' });
  if (answer.status !== 200) throw new RefusedError(answer.status, await readJson(answer.body));
  answer.body.pipe(process.stdout);
  await new Promise<void>((resolve, reject) => {
    answer.body.once('end', resolve);
    answer.body.once('error', (err) => reject(new ConnectionError(`the connection dropped while reading the log (${err.message})`)));
  });
  return EXIT.succeeded;
}

async function cancel(client: ServerClient, args: string[], values: Values): Promise<number> {
  const { base, id } = jobTarget(args[0], values, process.env);
  const answer = await client.json<JobSummary>('DELETE', new URL(`jobs/${encodeURIComponent(id)}`, base));
  if (answer.status !== 200) throw new RefusedError(answer.status, answer.body);
  process.stdout.write(values.json ? `${JSON.stringify(answer.body)}\n` : `job ${answer.body.id} ${answer.body.status}\n`);
  return EXIT.succeeded;
}

const RUN = { call, jobs, logs, cancel } satisfies Record<ClientCommand, unknown>;

/** Runs one client command; returns the exit code. Never loads the server. */
export async function runClientCommand(command: ClientCommand, argv: string[]): Promise<number> {
  let client: ServerClient | undefined;
  try {
    const parsed = parseArgs({ args: argv, options: COMMAND_OPTIONS[command], allowPositionals: true, strict: true });
    const values = parsed.values as Values;
    const positionals = parsed.positionals;
    if (values.help) {
      process.stdout.write(CLIENT_HELP[command] ?? '');
      return EXIT.succeeded;
    }
    client = new ServerClient(clientOptions(values, process.env));
    return await RUN[command](client, positionals, values);
  } catch (err) {
    if (err instanceof RefusedError) {
      process.stderr.write(`armhook: ${err.status} ${err.code}: ${err.message}\n`);
      return exitCodeForRefusal(err.status);
    }
    if (err instanceof ConnectionError) {
      process.stderr.write(`armhook: ${err.message}\n`);
      return EXIT.unreachable;
    }
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`armhook ${command}: ${(err as Error).message}\n(armhook ${command} --help)\n`);
      return EXIT.usage;
    }
    throw err;
  } finally {
    client?.close();
  }
}

/** A field of a job summary as table text ('' when absent). */
function textOf(value: unknown): string {
  return typeof value === 'string' ? value : value == null ? '' : JSON.stringify(value);
}
