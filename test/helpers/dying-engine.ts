import net from 'node:net';
import path from 'node:path';

/**
 * A fake DOCKER_HOST: a unix socket that forwards to the real engine until the client asks for a container
 * export, then cuts that connection after `cutAfterBytes` of the response, as an engine that dies mid-stream
 * would. With `dieCompletely` it also stops answering anything afterwards (the engine is gone); otherwise
 * later connections are forwarded again (a dropped connection).
 */
export interface DyingEngine {
  dockerHost: string;
  /** Whether an export was cut. */
  readonly cut: boolean;
  close(): Promise<void>;
}

export async function dyingEngine(dir: string, opts: { cutAfterBytes: number; dieCompletely?: boolean }): Promise<DyingEngine> {
  const upstreamPath = (process.env.DOCKER_HOST ?? '').startsWith('unix://') ? process.env.DOCKER_HOST!.slice('unix://'.length) : '/var/run/docker.sock';
  const socket = path.join(dir, `dying-engine-${process.pid}.sock`);
  const sockets = new Set<net.Socket>();
  let cut = false;
  const server = net.createServer((client) => {
    if (cut && opts.dieCompletely) {
      client.destroy();
      return;
    }
    const upstream = net.connect(upstreamPath);
    sockets.add(client).add(upstream);
    let exporting = false;
    let sent = 0;
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (d: Buffer) => {
      if (/^GET \S*\/containers\/[0-9a-f]+\/export/m.test(d.toString('latin1'))) exporting = true;
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (exporting) {
        sent += d.length;
        if (sent > opts.cutAfterBytes) {
          cut = true;
          kill();
          if (opts.dieCompletely) for (const s of sockets) s.destroy();
          return;
        }
      }
      client.write(d);
    });
    client.on('error', kill).on('close', kill);
    upstream.on('error', kill).on('close', kill);
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return {
    dockerHost: `unix://${socket}`,
    get cut() {
      return cut;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
