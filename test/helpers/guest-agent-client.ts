/**
 * Asks a QEMU guest agent over the host end of its virtio port, as Proxmox does: guest-sync with a fresh id, so
 * that answers left over from an earlier attempt (to commands sent before the agent started) are skipped, then
 * the command, whose answer is the line after the sync's.
 */
import net from 'node:net';

function exchange(socket: string, id: number, execute: string, timeoutMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const conn = net.createConnection(socket);
    let buffer = '';
    let synced = false;
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`no answer from the guest agent within ${timeoutMs} ms (got ${JSON.stringify(buffer)})`));
    }, timeoutMs);
    conn.on('connect', () => conn.write(`${JSON.stringify({ execute: 'guest-sync', arguments: { id } })}\n${JSON.stringify({ execute })}\n`));
    conn.on('data', (d) => {
      buffer += d.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (!line) continue;
        const reply = JSON.parse(line) as { return?: unknown; error?: unknown };
        if (!synced) {
          synced = reply.return === id;
          continue;
        }
        clearTimeout(timer);
        conn.end();
        if (reply.error) reject(new Error(`the guest agent answered ${execute} with ${JSON.stringify(reply.error)}`));
        else resolve(reply.return);
        return;
      }
    });
    conn.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** The command's `return` value, asked again until `deadline` while the agent does not answer. */
export async function askGuestAgent(socket: string, execute: string, deadline: number): Promise<unknown> {
  let last: unknown = new Error('the deadline passed before the first attempt');
  for (let id = 4242; Date.now() < deadline; id++) {
    try {
      return await exchange(socket, id, execute, 15_000);
    } catch (e) {
      last = e;
    }
  }
  throw last instanceof Error ? last : new Error(String(last));
}
