// TLS material for the HTTPS server: operator certificate files or a self-signed dev certificate.
export { loadTlsMaterial, type LoadTlsOptions } from './load.ts';
export { httpsServerOptions, type HttpsServerOptions } from './options.ts';
export { createTlsService, type TlsService, type TlsServiceOptions } from './service.ts';
export { ACME_TLS_ALPN } from './served.ts';
export { ACME_ACCOUNT_KEY_FILE, ACME_CERT_FILE, ACME_KEY_FILE, acmeStatus } from './acme.ts';
export { CERT_SETTING, KEY_SETTING, TlsMaterialError, type TlsMaterial, type TlsMaterialSource, type TlsSetting } from './material.ts';
export { DEV_CERT_FILE, DEV_KEY_FILE, DEV_RENEW_WITHIN_DAYS, DEV_VALIDITY_DAYS } from './dev-cert.ts';
export { EXPIRY_WARN_DAYS } from './files.ts';
