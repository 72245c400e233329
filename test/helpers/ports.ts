import dgram from 'node:dgram';
import net from 'node:net';

/** A loopback port with nothing listening on it (on `host`): a server that is down, or one to start there. */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, host, r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/** Whether `port` on `host` can be bound now, for TCP and for UDP. */
async function bindable(port: number, host: string): Promise<boolean> {
  const tcp = net.createServer();
  const tcpOk = await new Promise<boolean>((r) => {
    tcp.once('error', () => r(false));
    tcp.listen(port, host, () => r(true));
  });
  if (tcpOk) await new Promise((r) => tcp.close(r));
  if (!tcpOk) return false;
  const udp = dgram.createSocket('udp4');
  const udpOk = await new Promise<boolean>((r) => {
    udp.once('error', () => r(false));
    udp.bind(port, host, () => r(true));
  });
  await new Promise<void>((r) => udp.close(() => r()));
  return udpOk;
}

/**
 * The first of `count` consecutive ports free for TCP and UDP, for a server that must listen on a fixed port (a
 * WebRtcServer). Taken below the kernel's ephemeral range (32768-60999), so no outgoing connection of a parallel
 * test can be handed one of them between this check and the bind, and above the test S3 servers' 20000-29999.
 */
export async function freePortRun(count: number, host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 30000 + Math.floor(Math.random() * 1300) * 2;
    let free = true;
    for (let i = 0; i < count && free; i++) free = await bindable(base + i, host);
    if (free) return base;
  }
  throw new Error(`no run of ${count} free ports found between 30000 and 32600 on ${host}`);
}
