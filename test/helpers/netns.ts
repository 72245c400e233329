import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveWorkerBin } from '../../src/media/index.js';

/**
 * A network namespace joined to the test's own by a veth pair, for serving media
 * on a routable address: Firefox gathers no loopback ICE candidate, so a
 * transport on 127.0.0.1 is out of its reach, while the veth's address is one
 * any browser on this machine gathers and reaches.
 */
export interface MediaNamespace {
  name: string;
  /** The namespace side of the veth: where media listens and what it announces. */
  mediaIp: string;
  /** The side in the test's namespace, where the browsers are. */
  hostIp: string;
  /** An executable that runs the mediasoup worker inside the namespace (a value for `media.workerBin`). */
  workerBin: string;
  /** Removes the namespace, the veth pair and the wrapper. Safe to call twice. */
  close: () => void;
}

const PREFIX = 'vigie-t';

function ip(args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT')
      throw new Error('netns helper: the `ip` command is missing; install iproute2 (bash scripts/setup.sh test)');
    throw new Error(`netns helper: \`ip ${args.join(' ')}\` failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** Where the worker wrapper of namespace `name` lives. */
const wrapperDir = (name: string) => path.join(os.tmpdir(), name);

/** Namespaces (and wrappers) a crashed earlier run left behind: ours by prefix, with an owner process that is gone. */
function removeStale(): void {
  for (const line of ip(['netns', 'list']).split('\n')) {
    const m = new RegExp(`^(${PREFIX}(\\d+)-\\w+)`).exec(line);
    if (!m) continue;
    try {
      process.kill(Number(m[2]), 0);
    } catch {
      try {
        execFileSync('ip', ['netns', 'delete', m[1]!], { stdio: 'ignore' });
      } catch {
        // Another run removed it first.
      }
      rmSync(wrapperDir(m[1]!), { recursive: true, force: true });
    }
  }
}

/** A /30 in 10.200.0.0-10.249.255.255, in a /24 that no interface of this machine uses yet. */
function freeSubnet(): [string, string] {
  const used = ip(['-4', '-o', 'addr', 'show']);
  for (let i = 0; i < 50; i++) {
    const [a = 0, b = 0, c = 0] = randomBytes(3);
    const net = `10.${200 + (a % 50)}.${b}`;
    const base = c & 0xfc;
    if (!used.includes(` ${net}.`)) return [`${net}.${base + 1}`, `${net}.${base + 2}`];
  }
  throw new Error('netns helper: no free 10.x.y.z/30 subnet found');
}

/**
 * Creates a namespace `vigie-t<pid>-<random>` with a veth pair on a fresh /30,
 * and a worker wrapper that keeps mediasoup's pipe file descriptors
 * (`exec ip netns exec NS WORKER "$@"`). Fails loudly when not root or `ip`
 * is missing: a test that needs it must not pass without it.
 */
export function createMediaNamespace(): MediaNamespace {
  if (process.getuid?.() !== 0)
    throw new Error('netns helper: creating a network namespace needs root (CAP_NET_ADMIN); run the test as root');
  removeStale();
  const id = randomBytes(3).toString('hex');
  const name = `${PREFIX}${process.pid}-${id}`;
  // Interface names are at most 15 characters.
  const hostIf = `vgh${id}`;
  const nsIf = `vgn${id}`;
  const [hostIp, mediaIp] = freeSubnet();
  const dir = wrapperDir(name);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    process.off('exit', close);
    // Deleting the namespace also deletes the veth pair once no process is left in it; the host end is removed
    // explicitly so that the pair goes even if a worker still runs inside.
    for (const args of [
      ['link', 'delete', hostIf],
      ['netns', 'delete', name],
    ]) {
      try {
        execFileSync('ip', args, { stdio: 'ignore' });
      } catch {
        // Already gone.
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', close);
  try {
    mkdirSync(dir);
    ip(['netns', 'add', name]);
    ip(['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    ip(['link', 'set', nsIf, 'netns', name]);
    ip(['addr', 'add', `${hostIp}/30`, 'dev', hostIf]);
    ip(['link', 'set', hostIf, 'up']);
    ip(['-n', name, 'addr', 'add', `${mediaIp}/30`, 'dev', nsIf]);
    ip(['-n', name, 'link', 'set', nsIf, 'up']);
    ip(['-n', name, 'link', 'set', 'lo', 'up']);
    // Replies to candidates on the machine's other addresses go back over the veth too.
    ip(['-n', name, 'route', 'add', 'default', 'via', hostIp]);
    const workerBin = path.join(dir, 'mediasoup-worker');
    writeFileSync(
      workerBin,
      `#!/bin/sh\nexec ip netns exec ${name} ${resolveWorkerBin(process.env.MEDIASOUP_WORKER_BIN)} "$@"\n`,
    );
    chmodSync(workerBin, 0o755);
    return { name, mediaIp, hostIp, workerBin, close };
  } catch (err) {
    close();
    throw err;
  }
}
