import type { Sfu } from '../media/index.js';

/** What a node carries, as the registry publishes it for placement. */
export interface NodeLoad {
  workers: number;
  rooms: number;
  peers: number;
  consumers: number;
  /** Mean share of one core used by each mediasoup worker since the previous sample (0…1). */
  cpu: number;
}

/**
 * Samples the load of this node's SFU. Worker CPU is the growth of each
 * worker's user and system time (`getResourceUsage`) between two samples,
 * over the wall time between them; a replaced worker starts a new baseline.
 */
export function sfuLoad(sfu: Sfu): () => Promise<NodeLoad> {
  let prev = new Map<number, number>();
  let prevAt = performance.now();
  return async () => {
    let peers = 0;
    let consumers = 0;
    for (const room of sfu.rooms.values())
      for (const peer of room.peers.values()) {
        peers++;
        consumers += peer.consumers.size;
      }
    const live = sfu.pool.slots.filter((s) => !s.worker.died && !s.worker.closed);
    const usage = await Promise.all(
      live.map(async (s) => {
        const u = await s.worker.getResourceUsage().catch(() => undefined);
        return [s.worker.pid, u ? u.ru_utime + u.ru_stime : undefined] as const;
      }),
    );
    const now = performance.now();
    const elapsedMs = now - prevAt;
    let busyMs = 0;
    let measured = 0;
    const next = new Map<number, number>();
    for (const [pid, cpuMs] of usage) {
      if (cpuMs === undefined) continue;
      next.set(pid, cpuMs);
      const before = prev.get(pid);
      if (before === undefined) continue;
      busyMs += Math.max(0, cpuMs - before);
      measured++;
    }
    prev = next;
    prevAt = now;
    const cpu = measured && elapsedMs > 0 ? Math.min(1, busyMs / elapsedMs / measured) : 0;
    return { workers: live.length, rooms: sfu.rooms.size, peers, consumers, cpu };
  };
}
