// The access file: which callers may run which hooks, and whose jobs they may see.
//
//   { "rules": [ { "callers": ["api"], "run": ["vm/*"], "jobs": "own" } ],
//     "signatures": { "github": { "scheme": "github", "secretFile": "…", "hooks": ["ci/github"] } } }
//
// Rules add up; what no rule grants is denied. Parsing collects every problem at once, so
// `armhook check` and the reload log can name them all.

/** Whose jobs a caller may list, read, tail and cancel. */
export type JobScope = 'none' | 'own' | 'all';

const SCOPE_RANK: Record<JobScope, number> = { none: 0, own: 1, all: 2 };

export type SignatureScheme = 'github' | 'hmac';

export interface SignatureSpec {
  /** The entry's key: the caller is `signature:<name>`. */
  name: string;
  scheme: SignatureScheme;
  secretFile: string;
  /** Hook globs this signature authenticates, as written. */
  hooks: string[];
  /** The same, compiled. */
  patterns: RegExp[];
  /** The shared secret, read from secretFile with the access file (empty until then). Never logged. */
  secret: Buffer;
}

export interface Rule {
  callers: string[];
  run: string[];
  jobs: JobScope;
}

/** What one caller may do, under the rules in force. */
export interface CallerAccess {
  readonly caller: string;
  /** Whose jobs this caller sees. */
  readonly jobs: JobScope;
  /** True when the caller may run (and see in the catalog) the hook at this path (no leading slash). */
  mayRun(hook: string): boolean;
  /** True when the caller may see a job started by `owner`. */
  maySee(owner: string): boolean;
}

/** Compiled rules; `forCaller` is cheap enough for every request. */
export interface AccessPolicy {
  /** False when no access file is configured: every authenticated caller may do everything. */
  readonly restricted: boolean;
  readonly ruleCount: number;
  readonly signatures: SignatureSpec[];
  forCaller(caller: string): CallerAccess;
  /** The signatures that authenticate runs of this hook (none: the hook takes callers as usual). */
  signaturesFor(hook: string): SignatureSpec[];
}

/** The access file is not usable; `problems` lists everything wrong with it. */
export class AccessFileError extends Error {
  readonly problems: string[];
  constructor(file: string, problems: string[]) {
    super(`access file ${file}: ${problems.join('; ')}`);
    this.name = 'AccessFileError';
    this.problems = problems;
  }
}

const SEGMENT = /^[A-Za-z0-9._-]+$/;

/**
 * A hook glob as a RegExp over hook paths without the leading slash: `*` is one segment (or
 * part of one), `**` one or more whole segments.
 */
export function compileGlob(glob: string): RegExp {
  const parts = glob.split('/').map((segment) => {
    if (segment === '**') return '.+';
    if (segment === '' || !/^[A-Za-z0-9._*-]+$/.test(segment) || segment.includes('**'))
      throw new Error(`hook pattern ${JSON.stringify(glob)}: segment ${JSON.stringify(segment)} is not a name, * or **`);
    return segment
      .split('*')
      .map((text) => text.replace(/[.]/g, '\\.'))
      .join('[^/]*');
  });
  return new RegExp(`^${parts.join('/')}$`);
}

function validCallerName(name: string): boolean {
  return name === '*' || /^(?:entra:[0-9a-fA-F-]{36}|signature:[A-Za-z0-9._-]+|[^\s:]{1,255})$/.test(name);
}

function stringList(value: unknown, where: string, problems: string[]): string[] {
  if (!Array.isArray(value) || value.length === 0 || !value.every((v) => typeof v === 'string' && v !== '')) {
    problems.push(`${where} must be a non-empty list of strings`);
    return [];
  }
  return value as string[];
}

function globs(value: unknown, where: string, problems: string[]): RegExp[] {
  const out: RegExp[] = [];
  for (const glob of stringList(value, where, problems)) {
    try {
      out.push(compileGlob(glob.replace(/^\//, '')));
    } catch (err) {
      problems.push(`${where}: ${(err as Error).message}`);
    }
  }
  return out;
}

interface CompiledRule {
  callers: Set<string>;
  run: RegExp[];
  jobs: JobScope;
}

function parseRules(value: unknown, problems: string[]): CompiledRule[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    problems.push('"rules" must be a list of { "callers", "run", "jobs" }');
    return [];
  }
  return value.flatMap((raw: unknown, i): CompiledRule[] => {
    const where = `rules[${i}]`;
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
      problems.push(`${where} must be an object with "callers", "run" and "jobs"`);
      return [];
    }
    const rule = raw as Record<string, unknown>;
    for (const key of Object.keys(rule))
      if (!['callers', 'run', 'jobs'].includes(key)) problems.push(`${where}: unknown key "${key}" (known: callers, run, jobs)`);
    const callers = stringList(rule.callers, `${where}.callers`, problems);
    for (const name of callers)
      if (!validCallerName(name))
        problems.push(`${where}.callers: ${JSON.stringify(name)} is not a caller name (a user, entra:<object id>, signature:<name> or *)`);
    const run = rule.run === undefined ? [] : globs(rule.run, `${where}.run`, problems);
    const jobs = rule.jobs ?? 'none';
    if (jobs !== 'none' && jobs !== 'own' && jobs !== 'all') problems.push(`${where}.jobs must be "own", "all" or "none"`);
    // Object ids are GUIDs, which Entra writes in lower case and people copy in either.
    const names = callers.map((name) => (name.startsWith('entra:') ? name.toLowerCase() : name));
    return [{ callers: new Set(names), run, jobs: jobs as JobScope }];
  });
}

function parseSignatures(value: unknown, problems: string[]): SignatureSpec[] {
  if (value === undefined) return [];
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    problems.push('"signatures" must be an object of name → { "scheme", "secretFile", "hooks" }');
    return [];
  }
  return Object.entries(value as Record<string, unknown>).flatMap(([name, raw]) => {
    const where = `signatures.${name}`;
    if (!SEGMENT.test(name)) problems.push(`${where}: the name may only hold letters, digits, '.', '_' and '-'`);
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
      problems.push(`${where} must be an object with "scheme", "secretFile" and "hooks"`);
      return [];
    }
    const spec = raw as Record<string, unknown>;
    for (const key of Object.keys(spec))
      if (!['scheme', 'secretFile', 'hooks'].includes(key)) problems.push(`${where}: unknown key "${key}" (known: scheme, secretFile, hooks)`);
    if (spec.scheme !== 'github' && spec.scheme !== 'hmac') problems.push(`${where}.scheme must be "github" or "hmac"`);
    if (typeof spec.secretFile !== 'string' || !spec.secretFile.startsWith('/')) problems.push(`${where}.secretFile must be an absolute path`);
    const patterns = globs(spec.hooks, `${where}.hooks`, problems);
    return [
      {
        name,
        scheme: spec.scheme as SignatureScheme,
        secretFile: String(spec.secretFile),
        hooks: (spec.hooks as string[] | undefined) ?? [],
        patterns,
        secret: Buffer.alloc(0),
      },
    ];
  });
}

class Access implements CallerAccess {
  readonly caller: string;
  readonly jobs: JobScope;
  readonly #run: RegExp[];
  constructor(caller: string, rules: CompiledRule[], signed: RegExp[]) {
    this.caller = caller;
    const mine = rules.filter((rule) => rule.callers.has(caller) || rule.callers.has('*'));
    this.#run = [...signed, ...mine.flatMap((rule) => rule.run)];
    this.jobs = mine.reduce<JobScope>((scope, rule) => (SCOPE_RANK[rule.jobs] > SCOPE_RANK[scope] ? rule.jobs : scope), 'none');
  }
  mayRun(hook: string): boolean {
    return this.#run.some((glob) => glob.test(hook));
  }
  maySee(owner: string): boolean {
    return this.jobs === 'all' || (this.jobs === 'own' && owner === this.caller);
  }
}

/**
 * What an operator should know about the signatures (not errors: the file is in force). A GitHub
 * signature covers the body only, never the URL, so a delivery captured on its way to one hook
 * can be sent to any other hook its secret is good for, where it runs once more: one entry (and
 * secret) per GitHub hook binds each delivery to its hook. Call once the secrets are read.
 */
export function signatureWarnings(policy: AccessPolicy): string[] {
  const github = policy.signatures.filter((spec) => spec.scheme === 'github');
  const warnings = github
    .filter((spec) => spec.hooks.length > 1 || spec.hooks.some((glob) => glob.includes('*')))
    .map(
      (spec) =>
        `signatures.${spec.name} (github) serves several hooks (${spec.hooks.join(', ')}): a GitHub signature does not cover the URL, so a delivery to one of them can be replayed to another; give each GitHub hook its own entry and secret`,
    );
  for (const [i, spec] of github.entries()) {
    const twin = github.slice(i + 1).find((other) => other.secret.length > 0 && other.secret.equals(spec.secret));
    if (twin)
      warnings.push(
        `signatures.${spec.name} and signatures.${twin.name} (github) share a secret: a delivery to one can be replayed to the other; give each its own secret`,
      );
  }
  return warnings;
}

/** Every caller may do everything: no access file. */
export const OPEN_POLICY: AccessPolicy = {
  restricted: false,
  ruleCount: 0,
  signatures: [],
  forCaller: (caller) => ({ caller, jobs: 'all', mayRun: () => true, maySee: () => true }),
  signaturesFor: () => [],
};

/** Parses and compiles an access file's text; throws AccessFileError naming every problem. */
export function parseAccessFile(text: string, file: string): AccessPolicy {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new AccessFileError(file, [`not valid JSON (${(err as Error).message})`]);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json))
    throw new AccessFileError(file, ['must be a JSON object with "rules" (and optionally "signatures")']);
  const problems: string[] = [];
  const top = json as Record<string, unknown>;
  for (const key of Object.keys(top)) if (key !== 'rules' && key !== 'signatures') problems.push(`unknown key "${key}" (known: rules, signatures)`);
  const rules = parseRules(top.rules, problems);
  const signatures = parseSignatures(top.signatures, problems);
  if (problems.length > 0) throw new AccessFileError(file, problems);
  // Callers are few (users, identities, senders): their compiled view is kept.
  const views = new Map<string, CallerAccess>();
  return {
    restricted: true,
    ruleCount: rules.length,
    signatures,
    signaturesFor: (hook) => (signatures.length === 0 ? [] : signatures.filter((spec) => spec.patterns.some((glob) => glob.test(hook)))),
    forCaller(caller) {
      let view = views.get(caller);
      if (view === undefined) {
        // A signature may run the hooks of its own entry.
        const signed = caller.startsWith('signature:') ? (signatures.find((spec) => `signature:${spec.name}` === caller)?.patterns ?? []) : [];
        view = new Access(caller, rules, signed);
        if (views.size < 10_000) views.set(caller, view);
      }
      return view;
    },
  };
}
