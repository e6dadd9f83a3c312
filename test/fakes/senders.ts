/**
 * Real-shaped deliveries of the automation that calls armhook: GitHub webhooks (push and ping,
 * with the headers GitHub sends, JSON or form-encoded, signed like GitHub signs), the hmac
 * scheme's signature header, Azure Event Grid's subscription validation and event arrays, and a
 * CloudEvents batch.
 */
import { createHmac, randomUUID } from 'node:crypto';

const REPO = {
  id: 1296269,
  node_id: 'MDEwOlJlcG9zaXRvcnkxMjk2MjY5',
  name: 'infra',
  full_name: 'contoso/infra',
  private: true,
  owner: { name: 'contoso', login: 'contoso', id: 9919, type: 'Organization' },
  html_url: 'https://github.com/contoso/infra',
  default_branch: 'main',
  master_branch: 'main',
};

function commit(i: number): Record<string, unknown> {
  const id = createHmac('sha1', 'commit').update(String(i)).digest('hex');
  return {
    id,
    tree_id: createHmac('sha1', 'tree').update(String(i)).digest('hex'),
    distinct: true,
    message: `Change ${i}: update the VM size of the test environment\n\nLonger description of change ${i}.`,
    timestamp: '2026-12-05T21:58:08+01:00',
    url: `https://github.com/contoso/infra/commit/${id}`,
    author: { name: 'Mona Lisa', email: 'mona@contoso.com', username: 'mona' },
    committer: { name: 'GitHub', email: 'noreply@github.com', username: 'web-flow' },
    added: [],
    removed: [],
    modified: [`envs/test/vm-${i}.bicep`],
  };
}

/** A push event's payload (GitHub's shape, trimmed of nothing armhook cares about). */
export function githubPush(commits = 1, ref = 'refs/heads/main'): Record<string, unknown> {
  const list = Array.from({ length: commits }, (_, i) => commit(i));
  return {
    ref,
    before: '6113728f27ae82c7b1a177c8d03f9e96e0adf246',
    after: list.at(-1)?.id ?? '0000000000000000000000000000000000000000',
    repository: REPO,
    pusher: { name: 'mona', email: 'mona@contoso.com' },
    organization: { login: 'contoso', id: 9919 },
    sender: { login: 'mona', id: 583231, type: 'User' },
    created: false,
    deleted: false,
    forced: false,
    base_ref: null,
    compare: 'https://github.com/contoso/infra/compare/6113728f27ae...0d1a26e67d8f',
    commits: list,
    head_commit: list.at(-1) ?? null,
  };
}

export function githubPing(): Record<string, unknown> {
  return {
    zen: 'Design for failure.',
    hook_id: 30,
    hook: {
      type: 'Repository',
      id: 30,
      name: 'web',
      active: true,
      events: ['push'],
      config: { content_type: 'json', insecure_ssl: '0', url: 'https://runner.example.com/ci/github' },
    },
    repository: REPO,
    sender: { login: 'mona', id: 583231, type: 'User' },
  };
}

export interface Delivery {
  body: Buffer;
  headers: Record<string, string>;
  delivery: string;
}

/** A delivery as GitHub sends it: JSON, or form-encoded (`payload=<json>`), signed over the raw body. */
export function githubDelivery(event: string, payload: Record<string, unknown>, secret: string, options: { form?: boolean; delivery?: string } = {}): Delivery {
  const json = JSON.stringify(payload);
  const body = Buffer.from(options.form ? new URLSearchParams({ payload: json }).toString() : json);
  const delivery = options.delivery ?? randomUUID();
  return {
    body,
    delivery,
    headers: {
      'user-agent': 'GitHub-Hookshot/3ac4f1b',
      accept: '*/*',
      'content-type': options.form ? 'application/x-www-form-urlencoded' : 'application/json',
      'x-github-event': event,
      'x-github-delivery': delivery,
      'x-github-hook-id': '30',
      'x-github-hook-installation-target-type': 'repository',
      'x-hub-signature': `sha1=${createHmac('sha1', secret).update(body).digest('hex')}`,
      'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
    },
  };
}

/** The hmac scheme's header: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<METHOD>.<path?query>.<body>")>. */
export function hmacSignature(secret: string, method: string, url: string, body: Buffer | string, t = Math.floor(Date.now() / 1000)): string {
  const mac = createHmac('sha256', secret).update(`${t}.${method}.${url}.`).update(body).digest('hex');
  return `t=${t},v1=${mac}`;
}

/** Event Grid's subscription validation request (Event Grid schema). */
export function eventGridValidation(validationCode = randomUUID()): { body: Buffer; headers: Record<string, string>; validationCode: string } {
  const event = {
    id: randomUUID(),
    topic: '/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/app-rg/providers/Microsoft.Storage/storageAccounts/contosodata',
    subject: '',
    data: {
      validationCode,
      validationUrl: `https://rp-westeurope.eventgrid.azure.net:553/eventsubscriptions/armhook/validate?id=${validationCode}&t=2026-12-05T21:00:00.0000000Z&apiVersion=2022-06-15&token=abc`,
    },
    eventType: 'Microsoft.EventGrid.SubscriptionValidationEvent',
    eventTime: '2026-12-05T21:00:00.0000000Z',
    metadataVersion: '1',
    dataVersion: '2',
  };
  return {
    body: Buffer.from(JSON.stringify([event])),
    headers: { 'content-type': 'application/json', 'aeg-event-type': 'SubscriptionValidation', 'aeg-subscription-name': 'ARMHOOK', 'aeg-delivery-count': '0' },
    validationCode,
  };
}

/** A delivery of two Event Grid events (blob created). */
export function eventGridEvents(): { body: Buffer; headers: Record<string, string> } {
  const events = [1, 2].map((i) => ({
    id: randomUUID(),
    topic: '/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/app-rg/providers/Microsoft.Storage/storageAccounts/contosodata',
    subject: `/blobServices/default/containers/drops/blobs/build-${i}.zip`,
    eventType: 'Microsoft.Storage.BlobCreated',
    eventTime: '2026-12-05T21:00:00.0000000Z',
    data: {
      api: 'PutBlob',
      contentType: 'application/zip',
      contentLength: 524288,
      blobType: 'BlockBlob',
      url: `https://contosodata.blob.core.windows.net/drops/build-${i}.zip`,
    },
    dataVersion: '',
    metadataVersion: '1',
  }));
  return {
    body: Buffer.from(JSON.stringify(events)),
    headers: { 'content-type': 'application/json', 'aeg-event-type': 'Notification', 'aeg-subscription-name': 'ARMHOOK', 'aeg-delivery-count': '0' },
  };
}

/** A CloudEvents 1.0 batch (Event Grid's CloudEvents schema). */
export function cloudEventsBatch(): { body: Buffer; headers: Record<string, string> } {
  const events = [1, 2, 3].map((i) => ({
    specversion: '1.0',
    type: 'Microsoft.Resources.ResourceWriteSuccess',
    source: '/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/app-rg',
    subject: `/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/app-rg/providers/Microsoft.Compute/virtualMachines/vm${i}`,
    id: randomUUID(),
    time: '2026-12-05T21:00:00Z',
    datacontenttype: 'application/json',
    data: { operationName: 'Microsoft.Compute/virtualMachines/write', status: 'Succeeded' },
  }));
  return { body: Buffer.from(JSON.stringify(events)), headers: { 'content-type': 'application/cloudevents-batch+json; charset=utf-8' } };
}
