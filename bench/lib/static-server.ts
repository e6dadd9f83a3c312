/**
 * The transport reference of scenario 3, run as its own process: a bare Node https server (same
 * Node, same certificate) that sends one file with fs streams. Not armhook: it shows what Node's
 * TLS moves on this machine when nothing else happens per byte.
 *
 *   node bench/lib/static-server.ts <port> <file> <cert.pem> <key.pem>
 */
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:https';

const [port, file, cert, key] = process.argv.slice(2);
if (!port || !file || !cert || !key) {
  console.error('usage: static-server.ts <port> <file> <cert.pem> <key.pem>');
  process.exit(2);
}
const size = statSync(file).size;
const server = createServer({ cert: readFileSync(cert), key: readFileSync(key), minVersion: 'TLSv1.2' }, (req, res) => {
  if (req.url === '/healthz') {
    res.end('ok');
    return;
  }
  if (req.url !== '/file') {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(size) });
  createReadStream(file).pipe(res);
});
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
