// Public surface of server/access: the access file (who may run what, whose jobs they see).
export { AccessFile, loadAccessFile } from './file.ts';
export { AccessFileError, OPEN_POLICY, compileGlob, parseAccessFile, signatureWarnings } from './rules.ts';
export type { AccessPolicy, CallerAccess, JobScope, Rule, SignatureScheme, SignatureSpec } from './rules.ts';
