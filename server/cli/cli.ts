import { parseArgs } from 'node:util';
import { StartupError } from '../errors.ts';
import { configFlagOptions, ConfigError, flagsToSettings, loadConfig, settingsHelp, type Config } from '../config/index.ts';
import { createLogger } from '../log/index.ts';

const USAGE = `armhook — a webhook-driven deployment runner for an Azure VM with a managed identity

Usage:
  armhook serve [settings]                  start the HTTPS server (what npm start runs)
  armhook run <hook> [name=value ...]       run a hook here, output to this terminal
  armhook hooks [settings]                  list the hooks and their parameters
  armhook passwd <file> <user>              add or update a user (bcrypt) in an htpasswd file
  armhook check [settings]                  validate config, scripts, TLS, users and identity
  armhook call <url> [name=value ...]       run a hook on a server, stream its output, exit with its code
  armhook jobs | logs <id> | cancel <id>    list, read or follow, and cancel jobs on a server
  armhook token [--resource URI] [--json]   an access token of armhook's managed identity (for scripts)
  armhook backup <file> [settings]          a consistent copy of the job database (also while serving)
  armhook <command> --help                  help for one command

Settings (flag, environment variable; flags win over the environment, which wins over --config):
  --config <file.json>                      a JSON object of settings (keys: the README's settings table)
${settingsHelp()}
`;

const HELP: Record<string, string> = {
  serve:
    'armhook serve [settings]\n\nStarts the HTTPS server. Without ARMHOOK_TLS_CERT/KEY it generates a dev certificate under tls/.\nWithout ARMHOOK_HTPASSWD it only listens on loopback. SIGTERM drains running jobs first.\n',
  run: "armhook run <hook> [name=value ...] [settings]\n\nRuns a hook (e.g. vm/create) in this terminal with the same rules as the server:\ndeclared parameters are checked, the environment is built the same way, stdin is passed through.\nExits with the script's exit code.\n",
  hooks: 'armhook hooks [--json] [settings]\n\nLists the hooks found under the scripts directory, with their parameters.\n',
  passwd:
    'armhook passwd <file> <user>\n\nAdds or updates <user> with a bcrypt hash. The password is read from the terminal (twice),\nor from stdin when it is not a terminal. The file is created mode 0600 if needed.\n',
  token:
    'armhook token [--resource URI] [--json] [settings]\n\nPrints an access token of the managed identity armhook uses (system- or user-assigned,\n' +
    'Azure Arc, workload identity), for Resource Manager or --resource (e.g. https://vault.azure.net,\n' +
    'https://storage.azure.com, https://database.windows.net). Scripts call it as "$ARMHOOK_BIN" token.\n' +
    '--json prints {accessToken, tokenType, resource, expiresOn, expires_on, identityType, principalId, tenantId, clientId}.\n',
  backup:
    'armhook backup <file> [settings]\n\nWrites a consistent copy of the job database (ARMHOOK_DATA_DIR/armhook.db) to <file>, also while\nthe server runs, and checks it. To restore: stop armhook, put the copy in place of armhook.db (remove\narmhook.db-wal), start armhook.\n',
  check:
    'armhook check [settings]\n\nValidates the configuration, the scripts (headers, reserved names), TLS files, the htpasswd\nfile and, when on Azure, the managed identity. Exits non-zero on any problem.\n',
};

async function main(argv: string[]): Promise<number> {
  const command = argv[0];
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (!(command in HELP)) {
    process.stderr.write(`armhook: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parseArgs({
    args: argv.slice(1),
    options: { ...configFlagOptions(), help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' }, resource: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP[command] ?? USAGE);
    return 0;
  }
  if (command === 'passwd') {
    const { passwd } = await import('./passwd.ts');
    return passwd(positionals);
  }
  const config: Config = loadConfig({
    env: process.env,
    flags: flagsToSettings(values),
    configFile: (values as Record<string, unknown>).config as string | undefined,
  });
  const log = await createLogger({ level: config.logLevel, pretty: process.stdout.isTTY === true });
  switch (command) {
    case 'serve': {
      const { serve } = await import('./serve.ts');
      return serve(config, log);
    }
    case 'run': {
      const { runLocal } = await import('./run.ts');
      return runLocal(config, log, positionals);
    }
    case 'hooks': {
      const { listHooks } = await import('./hooks.ts');
      return listHooks(config, log, values.json === true);
    }
    case 'token': {
      const { printToken } = await import('./token.ts');
      return printToken(config, { resource: values.resource, json: values.json === true });
    }
    case 'backup': {
      const { backupJobs } = await import('./backup.ts');
      return backupJobs(config, positionals);
    }
    case 'check': {
      const { check } = await import('./check.ts');
      return check(config, log);
    }
  }
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    // TlsMaterialError is a StartupError too.
    if (err instanceof ConfigError || err instanceof StartupError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`armhook: ${(err as Error).message}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`armhook: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
