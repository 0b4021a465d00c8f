import { createReadStream, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A plain HTTP server on 127.0.0.1 (QEMU's user network reaches it at 10.0.2.2) serving the files the test names,
 * looked up at each request, so a test can swap a file between boots; GETs are counted per path.
 */
export async function serveFiles(files: () => Record<string, string>): Promise<{ port: number; gets: Map<string, number>; close: () => Promise<void> }> {
  const gets = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const name = (req.url ?? '/').replace(/^\/+/, '').split('?')[0];
    const file = files()[name];
    if (req.method !== 'GET' || !file) {
      res.writeHead(404).end();
      return;
    }
    gets.set(name, (gets.get(name) ?? 0) + 1);
    res.writeHead(200, { 'content-length': statSync(file).size, 'content-type': 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    gets,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
