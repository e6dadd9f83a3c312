/**
 * Which variables of armhook's own environment may be handed to scripts (ARMHOOK_PASS_ENV).
 *
 * Refused: armhook's own settings (ARMHOOK_*: some are secrets, and scripts get their ARMHOOK_*
 * context from armhook); variables that change how programs load or start, which could turn every
 * script into something else (the dynamic loader's LD_*, Node's and Python's start-up options,
 * bash's start-up files); variables armhook sets itself for every job; and lower-case names other
 * than the proxy variables, because parameters are lower case and a caller must not be able to
 * replace what the operator passed.
 */
const LOADER_NAMES = new Set([
  'NODE_OPTIONS',
  'NODE_PATH',
  'PYTHONPATH',
  'PYTHONHOME',
  'PYTHONSTARTUP',
  'PYTHONUSERBASE',
  'PYTHONINSPECT',
  'PYTHONSAFEPATH',
  'BASH_ENV',
  'ENV',
  'SHELLOPTS',
  'BASHOPTS',
  'IFS',
  'PS4',
  'PERL5LIB',
  'PERL5OPT',
  'PERLLIB',
  'RUBYLIB',
  'RUBYOPT',
  'JAVA_TOOL_OPTIONS',
  '_JAVA_OPTIONS',
  'GCONV_PATH',
  'GLIBC_TUNABLES',
  'LOCPATH',
  'NLSPATH',
  'HOSTALIASES',
]);
const LOADER_PREFIXES = ['LD_', 'DYLD_', 'BASH_FUNC_', 'MALLOC_'];
/** Set by armhook for every job; passing them would be overwritten or would fight armhook. */
const SET_BY_ARMHOOK = new Set(['AZURE_CONFIG_DIR', 'AZURE_SUBSCRIPTION_ID', 'AZURE_RESOURCE_GROUP', 'AZURE_LOCATION']);
const PROXY_NAMES = new Set(['http_proxy', 'https_proxy', 'no_proxy', 'all_proxy', 'ftp_proxy']);

/** Why `name` may not be passed to scripts, or undefined when it may. */
export function passEnvProblem(name: string): string | undefined {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return `"${name}" is not a variable name`;
  if (name.startsWith('ARMHOOK_')) return `${name} is armhook's own setting (some are secrets); scripts get their ARMHOOK_* context from armhook`;
  if (LOADER_NAMES.has(name) || LOADER_PREFIXES.some((p) => name.startsWith(p)))
    return `${name} changes how programs load or start, so it is never handed to scripts`;
  if (SET_BY_ARMHOOK.has(name)) return `armhook sets ${name} for every job itself`;
  if (name !== name.toUpperCase() && !PROXY_NAMES.has(name)) {
    return `${name} is lower case, like parameters, so a caller could replace it; pass upper-case names (or the lower-case proxy variables)`;
  }
  return undefined;
}

/**
 * Variables armhook derives from its own settings for scripts (see the hooks' Azure CLI set-up):
 * passing the same name as well would leave two sources for one value, so that is refused.
 */
export function derivedConflict(
  name: string,
  settings: { armCaFile: string | undefined; imdsIsDefault: boolean; managedIdentityClientId: string | undefined },
): string | undefined {
  if (settings.armCaFile !== undefined && (name === 'REQUESTS_CA_BUNDLE' || name === 'SSL_CERT_FILE')) {
    return `scripts get ${name} from ARMHOOK_ARM_CA_FILE (the system's CAs plus that file); put every extra CA into that file instead of passing ${name}`;
  }
  if (!settings.imdsIsDefault && (name === 'MSI_ENDPOINT' || name === 'AZURE_POD_IDENTITY_AUTHORITY_HOST')) {
    return `scripts get ${name} from ARMHOOK_IMDS_ENDPOINT; do not pass it as well`;
  }
  if (settings.managedIdentityClientId !== undefined && name === 'AZURE_CLIENT_ID') {
    return 'scripts get AZURE_CLIENT_ID from ARMHOOK_MANAGED_IDENTITY_CLIENT_ID; do not pass it as well';
  }
  return undefined;
}
