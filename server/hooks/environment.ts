import { ARMHOOK_BIN } from './armhook-bin.ts';
/** Variables a script inherits from the server; everything else it gets is set explicitly. */
export const INHERITED_VARIABLES = ['PATH', 'HOME', 'LANG', 'LANGUAGE', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TMPDIR', 'USER', 'LOGNAME'] as const;

export interface ScriptContext {
  jobId: string;
  hook: string;
  user: string;
  method: string;
}

/**
 * The whole environment of a script: a short allow-list from the server, the variables every
 * script gets from armhook's settings (ARMHOOK_PASS_ENV, MSI_ENDPOINT, CA bundle: see AzSetup),
 * the parameters (one variable each, same name), armhook's context, Azure's instance metadata and
 * a private AZURE_CONFIG_DIR. Parameter names are lower case by rule, so they never collide with
 * the upper-case variables (the lower-case proxy names are refused as parameters).
 */
export function buildScriptEnvironment(options: {
  inherit: NodeJS.ProcessEnv;
  shared: Readonly<Record<string, string>>;
  params: Map<string, string>;
  context: ScriptContext;
  azure: Record<string, string>;
  azureConfigDir: string;
}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of INHERITED_VARIABLES) {
    const value = options.inherit[name];
    if (value !== undefined) env[name] = value;
  }
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  Object.assign(env, options.shared);
  for (const [name, value] of options.params) env[name] = value;
  Object.assign(env, options.azure);
  env.ARMHOOK_JOB_ID = options.context.jobId;
  env.ARMHOOK_HOOK = options.context.hook;
  env.ARMHOOK_USER = options.context.user;
  env.ARMHOOK_METHOD = options.context.method;
  env.ARMHOOK_BIN = ARMHOOK_BIN;
  env.AZURE_CONFIG_DIR = options.azureConfigDir;
  return env;
}
