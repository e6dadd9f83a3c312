import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** Permission bits of the new file, set before any byte is written (a key is never readable by others, not even briefly). */
  mode: number;
  /** Owner to give the new file when it is not this process's (keeps an edited file's owner). */
  owner?: { uid: number; gid: number };
}

/** Which step failed, so a caller can say what to do (no permission in the directory, cannot keep the owner…). */
export class AtomicWriteError extends Error {
  readonly step: 'create' | 'owner';
  constructor(step: 'create' | 'owner', cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = 'AtomicWriteError';
    this.step = step;
  }

  get code(): string | undefined {
    return (this.cause as NodeJS.ErrnoException).code;
  }
}

/**
 * Replaces `path` with `data` so that a reader sees the old file or the new one, never a part, and
 * the new one survives a power loss: a temporary file in the same directory, fsync, rename, then
 * fsync of the directory (best effort: not every filesystem allows it).
 */
export async function writeFileAtomic(path: string, data: string, options: AtomicWriteOptions): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(temp, 'wx', options.mode).catch((err: unknown) => {
    throw new AtomicWriteError('create', err);
  });
  try {
    try {
      await fh.chmod(options.mode); // the umask may have removed bits we want (never adds any)
      const { owner } = options;
      if (owner && (owner.uid !== process.getuid?.() || owner.gid !== process.getgid?.())) {
        await fh.chown(owner.uid, owner.gid).catch((err: unknown) => {
          throw new AtomicWriteError('owner', err);
        });
      }
      await fh.writeFile(data, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await syncDirectory(dir);
}

async function syncDirectory(dir: string): Promise<void> {
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    // best effort
  }
}
