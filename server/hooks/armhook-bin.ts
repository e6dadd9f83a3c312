import { basename, join } from 'node:path';

/**
 * The path of bin/armhook, handed to scripts as ARMHOOK_BIN (`"$ARMHOOK_BIN" token`). This
 * module runs from server/hooks/ (TypeScript) or from a chunk in dist/ (the bundle).
 */
export const ARMHOOK_BIN = join(import.meta.dirname, ...(basename(import.meta.dirname) === 'dist' ? ['..'] : ['..', '..']), 'bin', 'armhook');
