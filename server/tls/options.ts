import type { TlsMaterial } from './material.ts';

/** Options for node:https / fastify's `https` option: TLS 1.2 and 1.3 only. */
export interface HttpsServerOptions {
  cert: string;
  key: string;
  minVersion: 'TLSv1.2';
}

export function httpsServerOptions(material: Pick<TlsMaterial, 'cert' | 'key'>): HttpsServerOptions {
  return { cert: material.cert, key: material.key, minVersion: 'TLSv1.2' };
}
