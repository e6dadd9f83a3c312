import { createInterface } from 'node:readline';
import { setPassword } from '../auth/index.ts';

/** Reads a line without echoing it when stdin is a terminal. */
async function readSecret(prompt: string): Promise<string> {
  const input = process.stdin;
  if (!input.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of input) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  }
  const rl = createInterface({ input, output: process.stderr, terminal: true });
  const write = (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput.bind(rl);
  let prompting = true;
  (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
    if (prompting) write(s);
  };
  return new Promise((resolve) => {
    rl.question(prompt, (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
    prompting = false;
  });
}

/** `armhook passwd <file> <user>` */
export async function passwd(args: string[]): Promise<number> {
  const [file, user] = args;
  if (!file || !user || args.length > 2) {
    process.stderr.write('usage: armhook passwd <file> <user>   (the password is read from the terminal, or from stdin)\n');
    return 2;
  }
  const password = await readSecret(`password for ${user}: `);
  if (process.stdin.isTTY) {
    const again = await readSecret('again: ');
    if (again !== password) {
      process.stderr.write('armhook: the passwords differ; nothing was changed\n');
      return 1;
    }
  }
  try {
    const outcome = await setPassword(file, user, password);
    process.stderr.write(`armhook: ${outcome} ${user} in ${file}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`armhook: ${(err as Error).message}\n`);
    return 1;
  }
}
