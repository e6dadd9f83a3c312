/**
 * A loopback fake of Azure Resource Manager over HTTPS (the SDK's bearer-token policy refuses
 * plain http), with a certificate from the test CA. It implements only the REST paths armhook's
 * handlers call, with in-memory state:
 *
 * - resource groups: list (paged when `pageSize` is set), get, create/update (201/200), delete
 *   (202 + Location, polled: 202 … then 200);
 * - virtual machines: list (per group, subscription-wide, `statusOnly=true` with statuses), get,
 *   instance view, start / powerOff / restart / deallocate / delete / runCommand (202 +
 *   Azure-AsyncOperation + Location; the async operation answers InProgress `inProgressPolls`
 *   times, then Succeeded; the Location then answers the result);
 * - template deployments: create (201 + Azure-AsyncOperation), get, cancel, operations list.
 *   One deployment operation per template resource; their states advance by one step each time
 *   the operations list is read (op 1 Running → op 1 Succeeded + op 2 Running → …), and the
 *   deployment reports Succeeded once the final step has been served. A client that streams
 *   operation states therefore sees every state, in order, without any timing assumption.
 *   Resources whose name contains "fail" end Failed, and so does the deployment.
 *
 * - `GET /metadata/endpoints` (no token needed, as on Azure Stack Hub): the cloud's endpoints, for
 *   `az cloud register`; `GET /subscriptions`: the one subscription (what `az login` lists).
 *
 * Errors: `fail({ method, path, status, code?, message?, times? })` injects an error body on
 * matching requests (403 → a realistic AuthorizationFailed message with action and scope).
 * Every request is recorded (`requests`), and `waitFor(predicate)` resolves on a matching one,
 * so tests can synchronise on events and prove that polling stopped after an abort.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ArmFakeOptions {
  /** PEM server certificate (valid for 127.0.0.1) and key, e.g. from test/helpers/certs.ts. */
  cert: string;
  key: string;
  subscriptionId: string;
  /** How many times an async operation answers InProgress before it completes (default 2). */
  inProgressPolls?: number;
  /** Page size of the resource group list (default: everything in one page). */
  pageSize?: number;
  /** Principal the 403 messages name (defaults match the IMDS fake's claims). */
  principal?: { oid: string; appid: string };
  /** Tenant of the subscription in `GET /subscriptions` (default matches the IMDS fake's claims). */
  tenantId?: string;
}

/** The one version every marketplace image has in the fake. */
const IMAGE_VERSION = '14393.6796.240307';

/** The token audience `/metadata/endpoints` names (what `az login` then asks the identity endpoint for). */
export const ARM_AUDIENCE = 'https://management.core.windows.net/';

export interface RecordedRequest {
  seq: number;
  method: string;
  /** Path without the query, as sent. */
  path: string;
  query: Record<string, string>;
  body: unknown;
  /** Whether a bearer token came with it. */
  bearer: boolean;
  /** What the fake answered. */
  status?: number;
}

export interface FailureRule {
  method?: string;
  /** Case-insensitive substring of the path, or a regular expression tested against it. */
  path: string | RegExp;
  status: number;
  code?: string;
  message?: string;
  /** How many matching requests fail (default: all until clearFailures()). */
  times?: number;
  headers?: Record<string, string>;
}

export interface FakeGroup {
  name: string;
  location: string;
  tags: Record<string, string>;
}

export interface FakeVm {
  rg: string;
  name: string;
  location: string;
  vmSize: string;
  powerState: 'running' | 'stopped' | 'deallocated' | 'starting' | 'stopping' | 'deallocating';
}

export interface FakeDeploymentOperation {
  operationId: string;
  resourceType: string;
  resourceName: string;
  fails: boolean;
}

export interface FakeDeployment {
  rg: string;
  name: string;
  template: Record<string, unknown>;
  parameters: Record<string, { value?: unknown }>;
  operations: FakeDeploymentOperation[];
  /** Reads of the operations list so far (drives the steps). */
  served: number;
  state: 'Accepted' | 'Running' | 'Succeeded' | 'Failed' | 'Canceled';
  correlationId: string;
}

export interface RunCommandStatus {
  code: string;
  level: string;
  displayStatus: string;
  message: string;
}

export interface ArmFake {
  url: string;
  requests: RecordedRequest[];
  groups: Map<string, FakeGroup>;
  vms: Map<string, FakeVm>;
  deployments: Map<string, FakeDeployment>;
  inProgressPolls: number;
  /** While true, reading the operations list does not advance deployments (they stay Running). */
  pauseDeployments: boolean;
  /** What run-command returns for a script (default: a Linux-style [stdout]/[stderr] message). */
  runCommandOutput: (script: string[], commandId: string) => RunCommandStatus[];
  addGroup(name: string, location?: string, tags?: Record<string, string>): FakeGroup;
  addVm(rg: string, name: string, options?: Partial<Omit<FakeVm, 'rg' | 'name'>>): FakeVm;
  fail(rule: FailureRule): void;
  clearFailures(): void;
  /** Resolves with the first recorded request (past or future) that matches. */
  waitFor(predicate: (r: RecordedRequest) => boolean): Promise<RecordedRequest>;
  close(): Promise<void>;
}

const key = (...parts: string[]): string => parts.map((p) => p.toLowerCase()).join('/');

export async function startArmFake(options: ArmFakeOptions): Promise<ArmFake> {
  const sub = options.subscriptionId;
  const principal = options.principal ?? { oid: 'aaaaaaaa-0000-4000-8000-000000000001', appid: 'cccccccc-0000-4000-8000-000000000003' };
  const requests: RecordedRequest[] = [];
  const groups = new Map<string, FakeGroup>();
  const vms = new Map<string, FakeVm>();
  const deployments = new Map<string, FakeDeployment>();
  const failures: Array<FailureRule & { left: number }> = [];
  const waiters = new Set<{ predicate: (r: RecordedRequest) => boolean; resolve: (r: RecordedRequest) => void }>();
  let seq = 0;
  let opCounter = 0;

  interface AsyncOp {
    id: string;
    pollsLeft: number;
    /** Runs once when the operation completes; returns the result the Location answers with. */
    complete: () => unknown;
    /** For deployments: the status comes from the deployment itself. */
    status?: () => { status: string; error?: unknown };
    done: boolean;
    result?: unknown;
  }
  const ops = new Map<string, AsyncOp>();

  let base = '';
  const fake: ArmFake = {
    url: '',
    requests,
    groups,
    vms,
    deployments,
    inProgressPolls: options.inProgressPolls ?? 2,
    pauseDeployments: false,
    runCommandOutput: (script) => [
      {
        code: 'ProvisioningState/succeeded',
        level: 'Info',
        displayStatus: 'Provisioning succeeded',
        message: `Enable succeeded: \n[stdout]\n${script.map((l) => `ran: ${l}`).join('\n')}\n\n[stderr]\n`,
      },
    ],
    addGroup(name, location = 'westeurope', tags = {}) {
      const g = { name, location, tags };
      groups.set(key(name), g);
      return g;
    },
    addVm(rg, name, o = {}) {
      const vm: FakeVm = { rg, name, location: o.location ?? 'westeurope', vmSize: o.vmSize ?? 'Standard_B2s', powerState: o.powerState ?? 'running' };
      vms.set(key(rg, name), vm);
      return vm;
    },
    fail(rule) {
      failures.push({ ...rule, left: rule.times ?? Number.POSITIVE_INFINITY });
    },
    clearFailures() {
      failures.length = 0;
    },
    waitFor(predicate) {
      const found = requests.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve) => waiters.add({ predicate, resolve }));
    },
    close: async () => {},
  };

  const groupId = (rg: string): string => `/subscriptions/${sub}/resourceGroups/${rg}`;
  const vmId = (vm: FakeVm): string => `${groupId(vm.rg)}/providers/Microsoft.Compute/virtualMachines/${vm.name}`;
  const deploymentId = (d: FakeDeployment): string => `${groupId(d.rg)}/providers/Microsoft.Resources/deployments/${d.name}`;

  /** The cloud's endpoints, as Resource Manager publishes them (api-version 2015-01-01 shape). */
  const metadataEndpoints = (): unknown => ({
    galleryEndpoint: `${base}/gallery/`,
    graphEndpoint: `${base}/graph/`,
    portalEndpoint: `${base}/portal/`,
    authentication: { loginEndpoint: `${base}/login/`, audiences: [ARM_AUDIENCE] },
  });
  const subscriptionJson = (): unknown => ({
    id: `/subscriptions/${sub}`,
    subscriptionId: sub,
    tenantId: options.tenantId ?? 'tttttttt-0000-4000-8000-000000000002',
    displayName: 'armhook fake subscription',
    state: 'Enabled',
    subscriptionPolicies: { locationPlacementId: 'Public_2014-09-01', quotaId: 'PayAsYouGo_2014-09-01', spendingLimit: 'Off' },
    authorizationSource: 'RoleBased',
  });

  const groupJson = (g: FakeGroup): unknown => ({
    id: groupId(g.name),
    name: g.name,
    type: 'Microsoft.Resources/resourceGroups',
    location: g.location,
    tags: g.tags,
    properties: { provisioningState: 'Succeeded' },
  });
  const statuses = (vm: FakeVm): unknown[] => [
    { code: 'ProvisioningState/succeeded', level: 'Info', displayStatus: 'Provisioning succeeded' },
    { code: `PowerState/${vm.powerState}`, level: 'Info', displayStatus: `VM ${vm.powerState}` },
  ];
  const vmJson = (vm: FakeVm, withStatuses: boolean): unknown => ({
    id: vmId(vm),
    name: vm.name,
    type: 'Microsoft.Compute/virtualMachines',
    location: vm.location,
    properties: {
      vmId: `00000000-0000-4000-8000-${String(vmId(vm).length).padStart(12, '0')}`,
      hardwareProfile: { vmSize: vm.vmSize },
      provisioningState: 'Succeeded',
      ...(withStatuses ? { instanceView: { statuses: statuses(vm) } } : {}),
    },
  });

  /** Evaluates `[parameters('x')]`; other expressions stay as written. */
  const evaluate = (value: unknown, d: Pick<FakeDeployment, 'template' | 'parameters'>): unknown => {
    if (typeof value !== 'string') return value;
    const m = /^\[parameters\('([^']+)'\)\]$/.exec(value);
    if (!m) return value;
    const name = m[1] ?? '';
    if (name in d.parameters) return d.parameters[name]?.value;
    const declared = (d.template['parameters'] as Record<string, { defaultValue?: unknown }> | undefined)?.[name];
    return declared?.defaultValue;
  };

  /** Operation states at step `step` (0 = first resource running). */
  const operationStates = (
    d: FakeDeployment,
    step: number,
  ): Array<{ op: FakeDeploymentOperation; state: 'Running' | 'Succeeded' | 'Failed'; index: number }> => {
    const out: Array<{ op: FakeDeploymentOperation; state: 'Running' | 'Succeeded' | 'Failed'; index: number }> = [];
    for (let i = 0; i < d.operations.length && i <= step; i += 1) {
      const op = d.operations[i];
      if (!op) break;
      if (i < step) {
        out.push({ op, state: op.fails ? 'Failed' : 'Succeeded', index: i });
        if (op.fails) break; // nothing starts after a failure
      } else {
        out.push({ op, state: 'Running', index: i });
      }
    }
    return out;
  };
  const finalStep = (d: FakeDeployment): number => {
    const failing = d.operations.findIndex((o) => o.fails);
    return failing >= 0 ? failing + 1 : d.operations.length;
  };
  const deploymentFinished = (d: FakeDeployment): boolean => d.served > finalStep(d);
  const refreshDeploymentState = (d: FakeDeployment): void => {
    if (d.state === 'Canceled' || d.state === 'Succeeded' || d.state === 'Failed') return;
    if (deploymentFinished(d)) d.state = d.operations.some((o) => o.fails) ? 'Failed' : 'Succeeded';
    else if (d.served > 0) d.state = 'Running';
  };
  const deploymentJson = (d: FakeDeployment): unknown => {
    refreshDeploymentState(d);
    const outputs: Record<string, unknown> = {};
    if (d.state === 'Succeeded') {
      const declared = (d.template['outputs'] ?? {}) as Record<string, { type?: string; value?: unknown }>;
      for (const [name, o] of Object.entries(declared)) outputs[name] = { type: o.type ?? 'String', value: evaluate(o.value, d) };
    }
    return {
      id: deploymentId(d),
      name: d.name,
      type: 'Microsoft.Resources/deployments',
      properties: {
        provisioningState: d.state,
        correlationId: d.correlationId,
        timestamp: new Date().toISOString(),
        duration: 'PT1S',
        mode: 'Incremental',
        parameters: d.parameters,
        ...(d.state === 'Succeeded'
          ? {
              outputs,
              outputResources: d.operations.map((o) => ({ id: `${groupId(d.rg)}/providers/${o.resourceType}/${o.resourceName}` })),
            }
          : {}),
        ...(d.state === 'Failed'
          ? {
              error: { code: 'DeploymentFailed', message: 'At least one resource deployment operation failed. Please list deployment operations for details.' },
            }
          : {}),
      },
    };
  };
  const operationsJson = (d: FakeDeployment): unknown => {
    const step = Math.min(d.served, finalStep(d));
    if (!fake.pauseDeployments && d.state !== 'Canceled') d.served += 1;
    const t0 = Date.parse('2025-01-01T00:00:00Z');
    return {
      value: operationStates(d, step).map(({ op, state, index }) => ({
        id: `${deploymentId(d)}/operations/${op.operationId}`,
        operationId: op.operationId,
        properties: {
          provisioningOperation: 'Create',
          provisioningState: state,
          // Start time: operations sort in the order they started.
          timestamp: new Date(t0 + index * 1000).toISOString(),
          duration: 'PT1S',
          serviceRequestId: `req-${op.operationId}`,
          statusCode: state === 'Failed' ? 'BadRequest' : 'OK',
          ...(state === 'Failed'
            ? { statusMessage: { status: 'Failed', error: { code: 'InvalidResourceName', message: `The resource name '${op.resourceName}' is invalid.` } } }
            : {}),
          targetResource: {
            id: `${groupId(d.rg)}/providers/${op.resourceType}/${op.resourceName}`,
            resourceType: op.resourceType,
            resourceName: op.resourceName,
          },
        },
      })),
    };
  };

  const newOp = (location: string, complete: () => unknown, status?: AsyncOp['status']): { asyncUrl: string; locationUrl: string; op: AsyncOp } => {
    opCounter += 1;
    const id = `op-${String(opCounter).padStart(6, '0')}`;
    const op: AsyncOp = { id, pollsLeft: fake.inProgressPolls, complete, done: false, ...(status ? { status } : {}) };
    ops.set(id, op);
    return {
      op,
      asyncUrl: `${base}/subscriptions/${sub}/providers/Microsoft.Compute/locations/${location}/operations/${id}?api-version=2024-07-01`,
      locationUrl: `${base}/subscriptions/${sub}/providers/Microsoft.Compute/locations/${location}/operationResults/${id}?api-version=2024-07-01`,
    };
  };
  const finish = (op: AsyncOp): void => {
    if (op.done) return;
    op.done = true;
    op.result = op.complete();
  };

  /** A realistic AuthorizationFailed message for a request. */
  const authorizationFailed = (method: string, path: string): string => {
    const segments = path.split('/').filter(Boolean);
    let action: string;
    let scope = path;
    const providers = segments.findIndex((s) => s.toLowerCase() === 'providers');
    const verb = method === 'GET' ? 'read' : method === 'PUT' ? 'write' : method === 'DELETE' ? 'delete' : 'action';
    if (providers >= 0 && segments[providers + 1]) {
      const ns = segments[providers + 1];
      const type = segments[providers + 2] ?? '';
      const isResourceAction = method === 'POST' && segments.length > providers + 4;
      action = isResourceAction ? `${ns}/${type}/${segments[segments.length - 1]}/action` : `${ns}/${type}/${verb}`;
      if (isResourceAction) scope = `/${segments.slice(0, -1).join('/')}`;
    } else if (segments.some((s) => s.toLowerCase() === 'resourcegroups')) {
      action = `Microsoft.Resources/subscriptions/resourcegroups/${verb}`;
    } else {
      action = `Microsoft.Resources/subscriptions/${verb}`;
    }
    return `The client '${principal.appid}' with object id '${principal.oid}' does not have authorization to perform action '${action}' over scope '${scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Not new URL(req.url, base): a path starting "//" would parse as a host name.
    const url = new URL(`https://arm${req.url ?? '/'}`);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = raw;
    }
    const method = (req.method ?? 'GET').toUpperCase();
    const record: RecordedRequest = {
      seq: ++seq,
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body,
      bearer: /^Bearer \S+\.\S+\.\S+$/.test(req.headers['authorization'] ?? ''),
    };
    requests.push(record);

    const send = (status: number, payload?: unknown, headers: Record<string, string> = {}): void => {
      record.status = status;
      const text = payload === undefined ? '' : JSON.stringify(payload);
      res.writeHead(status, {
        ...(text ? { 'content-type': 'application/json; charset=utf-8' } : {}),
        'content-length': String(Buffer.byteLength(text)),
        'x-ms-request-id': `fake-${record.seq}`,
        ...headers,
      });
      res.end(text);
      for (const w of waiters) {
        if (w.predicate(record)) {
          waiters.delete(w);
          w.resolve(record);
        }
      }
    };
    const error = (status: number, code: string, message: string, headers: Record<string, string> = {}): void =>
      send(status, { error: { code, message } }, headers);

    // Clients that join their base URL (with its trailing slash) and a path send "//…".
    const path = url.pathname.replace(/\/{2,}/g, '/');
    // Public, like Resource Manager's: what `az cloud register --endpoint-resource-manager` reads.
    if (method === 'GET' && path === '/metadata/endpoints') return send(200, metadataEndpoints());

    if (!record.bearer) return error(401, 'AuthenticationFailed', 'Authentication failed. The Authorization header is missing or not a bearer token.');

    for (const rule of failures) {
      if (rule.left <= 0) continue;
      if (rule.method && rule.method.toUpperCase() !== method) continue;
      const hit = typeof rule.path === 'string' ? path.toLowerCase().includes(rule.path.toLowerCase()) : rule.path.test(path);
      if (!hit) continue;
      rule.left -= 1;
      const code =
        rule.code ??
        (
          {
            400: 'BadRequest',
            403: 'AuthorizationFailed',
            404: 'NotFound',
            409: 'Conflict',
            429: 'TooManyRequests',
            500: 'InternalServerError',
            503: 'ServiceUnavailable',
          } as Record<number, string>
        )[rule.status] ??
        'Error';
      const message = rule.message ?? (rule.status === 403 ? authorizationFailed(method, path) : `fake ARM failure ${rule.status}`);
      return error(rule.status, code, message, rule.headers);
    }

    const p = path.split('/').filter(Boolean);
    const lower = p.map((s) => s.toLowerCase());
    const at = (i: number): string => p[i] ?? '';
    const is = (...expected: string[]): boolean => lower.length === expected.length && expected.every((e, i) => e === '*' || e === lower[i]);

    if (method === 'GET' && is('subscriptions')) return send(200, { value: [subscriptionJson()] });

    if (lower[0] !== 'subscriptions' || at(1) !== sub) return error(404, 'SubscriptionNotFound', `The subscription '${at(1)}' could not be found.`);

    // --- async operations and their results -------------------------------------------
    if (method === 'GET' && is('subscriptions', '*', 'providers', 'microsoft.compute', 'locations', '*', 'operations', '*')) {
      const op = ops.get(at(7));
      if (!op) return error(404, 'NotFound', `operation ${at(7)} not found`);
      if (!op.done) {
        if (op.pollsLeft > 0) {
          op.pollsLeft -= 1;
          return send(200, { name: op.id, status: 'InProgress', startTime: new Date().toISOString() });
        }
        finish(op);
      }
      const output = op.result === undefined ? {} : { properties: { output: op.result } };
      return send(200, { name: op.id, status: 'Succeeded', startTime: new Date().toISOString(), endTime: new Date().toISOString(), ...output });
    }
    if (method === 'GET' && is('subscriptions', '*', 'providers', 'microsoft.compute', 'locations', '*', 'operationresults', '*')) {
      const op = ops.get(at(7));
      if (!op) return error(404, 'NotFound', `operation ${at(7)} not found`);
      if (!op.done) {
        return send(202, undefined, { location: `${base}${path}?api-version=2024-07-01` });
      }
      return op.result === undefined ? send(200) : send(200, op.result);
    }
    if (method === 'GET' && is('subscriptions', '*', 'operationresults', '*')) {
      // Resource group deletion: Location polling (202 … then 200).
      const op = ops.get(at(3));
      if (!op) return error(404, 'NotFound', `operation ${at(3)} not found`);
      if (!op.done && op.pollsLeft > 0) {
        op.pollsLeft -= 1;
        return send(202, undefined, { location: `${base}${path}?api-version=2025-04-01` });
      }
      finish(op);
      return send(200);
    }

    // --- resource groups ---------------------------------------------------------------
    if (is('subscriptions', '*', 'resourcegroups')) {
      if (method !== 'GET') return error(405, 'MethodNotAllowed', 'method not allowed');
      let list = [...groups.values()].sort((a, b) => a.name.localeCompare(b.name));
      const top = record.query['$top'] ? Number(record.query['$top']) : undefined;
      if (top !== undefined) list = list.slice(0, top);
      const skip = Number(record.query['$skiptoken'] ?? 0);
      const size = options.pageSize ?? list.length;
      const page = list.slice(skip, skip + Math.max(size, 1));
      const next = skip + page.length < list.length && top === undefined ? `${base}${path}?api-version=2025-04-01&$skiptoken=${skip + page.length}` : undefined;
      return send(200, { value: page.map(groupJson), ...(next ? { nextLink: next } : {}) });
    }
    if (is('subscriptions', '*', 'resourcegroups', '*')) {
      const name = at(3);
      const g = groups.get(key(name));
      if (method === 'GET') return g ? send(200, groupJson(g)) : error(404, 'ResourceGroupNotFound', `Resource group '${name}' could not be found.`);
      if (method === 'PUT') {
        const location = (body as { location?: string } | undefined)?.location;
        if (!location) return error(400, 'LocationRequired', 'The location property is required for this definition.');
        if (g && g.location !== location) {
          return error(
            409,
            'InvalidResourceGroupLocation',
            `Invalid resource group location '${location}'. The Resource group already exists in location '${g.location}'.`,
          );
        }
        const created = !g;
        const group = fake.addGroup(name, location, (body as { tags?: Record<string, string> }).tags ?? g?.tags ?? {});
        return send(created ? 201 : 200, groupJson(group));
      }
      if (method === 'DELETE') {
        if (!g) return error(404, 'ResourceGroupNotFound', `Resource group '${name}' could not be found.`);
        const { op } = newOp(g.location, () => {
          groups.delete(key(name));
          for (const [k, vm] of vms) if (vm.rg.toLowerCase() === name.toLowerCase()) vms.delete(k);
          return undefined;
        });
        return send(202, undefined, { location: `${base}/subscriptions/${sub}/operationresults/${op.id}?api-version=2025-04-01` });
      }
    }

    // --- virtual machines --------------------------------------------------------------
    if (method === 'GET' && is('subscriptions', '*', 'providers', 'microsoft.compute', 'virtualmachines')) {
      const statusOnly = record.query['statusOnly'] === 'true';
      return send(200, { value: [...vms.values()].map((vm) => vmJson(vm, statusOnly)) });
    }
    if (method === 'GET' && is('subscriptions', '*', 'resourcegroups', '*', 'providers', 'microsoft.compute', 'virtualmachines')) {
      if (!groups.has(key(at(3)))) return error(404, 'ResourceGroupNotFound', `Resource group '${at(3)}' could not be found.`);
      return send(200, { value: [...vms.values()].filter((vm) => vm.rg.toLowerCase() === lower[3]).map((vm) => vmJson(vm, false)) });
    }
    if (
      lower.length >= 8 &&
      is(...['subscriptions', '*', 'resourcegroups', '*', 'providers', 'microsoft.compute', 'virtualmachines', '*'], ...lower.slice(8))
    ) {
      const rg = at(3);
      const name = at(7);
      const vm = vms.get(key(rg, name));
      const notFound = (): void =>
        groups.has(key(rg))
          ? error(404, 'ResourceNotFound', `The Resource 'Microsoft.Compute/virtualMachines/${name}' under resource group '${rg}' was not found.`)
          : error(404, 'ResourceGroupNotFound', `Resource group '${rg}' could not be found.`);
      const sub8 = lower[8];
      if (!vm) return notFound();
      if (method === 'GET' && sub8 === undefined) return send(200, vmJson(vm, false));
      if (method === 'GET' && sub8 === 'instanceview') return send(200, { statuses: statuses(vm) });
      const lro = (transitional: FakeVm['powerState'] | undefined, complete: () => unknown): void => {
        if (transitional) vm.powerState = transitional;
        const { asyncUrl, locationUrl } = newOp(vm.location, complete);
        send(202, undefined, { 'azure-asyncoperation': asyncUrl, location: locationUrl });
      };
      if (method === 'POST' && sub8 === 'start') return lro('starting', () => void (vm.powerState = 'running'));
      if (method === 'POST' && sub8 === 'poweroff') return lro('stopping', () => void (vm.powerState = 'stopped'));
      if (method === 'POST' && sub8 === 'restart') return lro(undefined, () => void (vm.powerState = 'running'));
      if (method === 'POST' && sub8 === 'deallocate') return lro('deallocating', () => void (vm.powerState = 'deallocated'));
      if (method === 'DELETE' && sub8 === undefined) return lro(undefined, () => void vms.delete(key(rg, name)));
      if (method === 'POST' && sub8 === 'runcommand') {
        const input = (body ?? {}) as { commandId?: string; script?: string[] };
        if (vm.powerState !== 'running') {
          return error(409, 'OperationNotAllowed', `Cannot run command on VM '${name}' because it is not running (power state: ${vm.powerState}).`);
        }
        return lro(undefined, () => ({ value: fake.runCommandOutput(input.script ?? [], input.commandId ?? '') }));
      }
    }

    // --- what `az vm create` reads first: the image's versions, the group's networks ----
    if (
      method === 'GET' &&
      lower.length >= 14 &&
      is(
        'subscriptions',
        '*',
        'providers',
        'microsoft.compute',
        'locations',
        '*',
        'publishers',
        '*',
        'artifacttypes',
        'vmimage',
        'offers',
        '*',
        'skus',
        '*',
        'versions',
        ...lower.slice(15),
      )
    ) {
      const version = {
        name: IMAGE_VERSION,
        location: at(5),
        id: `/Subscriptions/${sub}/Providers/Microsoft.Compute/Locations/${at(5)}/Publishers/${at(7)}/ArtifactTypes/VMImage/Offers/${at(11)}/Skus/${at(13)}/Versions/${IMAGE_VERSION}`,
      };
      if (lower.length === 15) return send(200, [version]);
      if (lower.length === 16) return send(200, { ...version, properties: { osImage: { operatingSystem: 'Windows' }, hyperVGeneration: 'V1' } });
    }
    if (method === 'GET' && is('subscriptions', '*', 'resourcegroups', '*', 'providers', 'microsoft.network', 'virtualnetworks'))
      return send(200, { value: [] });

    // --- deployments -------------------------------------------------------------------
    const deploymentPath =
      is('subscriptions', '*', 'resourcegroups', '*', 'providers', 'microsoft.resources', 'deployments', '*', ...lower.slice(8)) && lower.length >= 8;
    const operationsPath = is('subscriptions', '*', 'resourcegroups', '*', 'deployments', '*', 'operations');
    if (operationsPath || deploymentPath) {
      const rg = at(3);
      const name = operationsPath ? at(5) : at(7);
      const tail = operationsPath ? 'operations' : lower[8];
      const dk = key(rg, name);
      const d = deployments.get(dk);
      if (!groups.has(key(rg))) return error(404, 'ResourceGroupNotFound', `Resource group '${rg}' could not be found.`);
      const missing = (): void => error(404, 'DeploymentNotFound', `Deployment '${name}' could not be found.`);
      if (method === 'PUT' && tail === undefined) {
        const props = ((body ?? {}) as { properties?: { template?: Record<string, unknown>; parameters?: Record<string, { value?: unknown }> } }).properties;
        const template = props?.template;
        if (!template || !Array.isArray(template['resources'])) {
          return error(400, 'InvalidTemplate', "Deployment template validation failed: 'The template resource list is missing'.");
        }
        if (d && (d.state === 'Accepted' || d.state === 'Running')) {
          return error(409, 'DeploymentActive', `The deployment '${name}' is already in progress.`);
        }
        const parameters = props?.parameters ?? {};
        const deployment: FakeDeployment = {
          rg,
          name,
          template,
          parameters,
          operations: [],
          served: 0,
          state: 'Accepted',
          correlationId: `corr-${seq}`,
        };
        deployment.operations = (template['resources'] as Array<{ type?: string; name?: unknown }>).map((r, i) => {
          const resourceName = String((evaluate(r.name, deployment) as string | undefined) ?? `resource${i}`);
          return {
            operationId: (0x1000 + i).toString(16).toUpperCase().padStart(16, '0'),
            resourceType: r.type ?? 'Unknown/type',
            resourceName,
            fails: resourceName.toLowerCase().includes('fail'),
          };
        });
        deployments.set(dk, deployment);
        opCounter += 1;
        const opId = `dop-${String(opCounter).padStart(6, '0')}`;
        ops.set(opId, {
          id: opId,
          pollsLeft: 0,
          done: false,
          complete: () => undefined,
          status: () => {
            refreshDeploymentState(deployment);
            const s = deployment.state;
            if (s === 'Failed') {
              return {
                status: 'Failed',
                error: {
                  code: 'DeploymentFailed',
                  message: 'At least one resource deployment operation failed. Please list deployment operations for details.',
                },
              };
            }
            return { status: s === 'Accepted' ? 'Running' : s };
          },
        });
        const asyncUrl = `${base}${groupId(rg)}/providers/Microsoft.Resources/deployments/${name}/operationStatuses/${opId}?api-version=2025-04-01`;
        return send(201, deploymentJson(deployment), { 'azure-asyncoperation': asyncUrl });
      }
      if (!d) return missing();
      if (method === 'GET' && tail === undefined) return send(200, deploymentJson(d));
      if (method === 'GET' && tail === 'operations') return send(200, operationsJson(d));
      if (method === 'GET' && tail === 'operationstatuses') {
        const op = ops.get(at(9));
        if (!op?.status) return error(404, 'NotFound', `operation ${at(9)} not found`);
        return send(200, op.status());
      }
      if (method === 'POST' && tail === 'cancel') {
        refreshDeploymentState(d);
        if (d.state !== 'Accepted' && d.state !== 'Running') {
          return error(409, 'DeploymentCannotBeCancelled', `Deployment '${name}' cannot be cancelled: it is ${d.state}.`);
        }
        d.state = 'Canceled';
        return send(204);
      }
    }

    return error(404, 'NoRegisteredProviderFound', `the ARM fake does not implement ${method} ${path}`);
  };

  const server: Server = createServer({ cert: options.cert, key: options.key, minVersion: 'TLSv1.2' }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'FakeCrashed', message: String(err) } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.url = base;
  fake.close = async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  };
  return fake;
}
