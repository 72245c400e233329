import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'vitest';
import { createMediaNamespace } from './helpers/netns.js';

const helper = fileURLToPath(new URL('./helpers/netns.ts', import.meta.url));
const namespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });

/** Runs `body` in a child process that has imported the helper as `createMediaNamespace`. */
function child(body: string, opts: { env?: NodeJS.ProcessEnv; user?: string } = {}) {
  const script = `import { createMediaNamespace } from ${JSON.stringify(helper)};\n${body}`;
  const node = [process.execPath, '--import', 'tsx', '--input-type=module', '-e', script];
  const [cmd, ...args] = opts.user ? ['runuser', '-u', opts.user, '--', ...node] : node;
  return spawnSync(cmd!, args, { encoding: 'utf8', env: opts.env ?? process.env, cwd: process.cwd() });
}

test('the namespace serves a UDP socket on its veth address, reachable from this namespace, and close() removes it all', async () => {
  const ns = createMediaNamespace();
  try {
    assert.match(namespaces(), new RegExp(`^${ns.name}\\b`, 'm'));
    assert.match(
      execFileSync('ip', ['-n', ns.name, '-4', 'addr'], { encoding: 'utf8' }),
      new RegExp(`inet ${ns.mediaIp.replaceAll('.', '\\.')}/30`),
    );
    // A UDP echo inside the namespace, on its address, started through the same wrapper style the worker uses.
    const echo = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(0,'${ns.mediaIp}',()=>console.log(s.address().port))`;
    const server = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', echo]);
    try {
      const port = await new Promise<number>((resolve, reject) => {
        server.stdout.once('data', (d) => resolve(Number(String(d).trim())));
        server.once('exit', (code) => reject(new Error(`echo server exited ${code}`)));
      });
      const sock = dgram.createSocket('udp4');
      const reply = await new Promise<{ msg: string; from: string }>((resolve) => {
        sock.on('message', (m, r) => resolve({ msg: String(m), from: r.address }));
        sock.send('ping', port, ns.mediaIp);
      });
      sock.close();
      assert.deepEqual(reply, { msg: 'ping', from: ns.mediaIp });
    } finally {
      server.kill();
    }
  } finally {
    ns.close();
  }
  assert.doesNotMatch(namespaces(), new RegExp(`^${ns.name}\\b`, 'm'));
  assert.doesNotMatch(
    execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }),
    new RegExp(`vgh${ns.name.split('-').at(-1)}`),
  );
});

test('a run that fails removes its namespace on exit, and one killed outright is removed by the next run', () => {
  const thrown = child(`const ns = createMediaNamespace(); console.log(ns.name); throw new Error('the test failed');`);
  assert.notEqual(thrown.status, 0);
  const name = thrown.stdout.trim();
  assert.match(name, /^vigie-t\d+-[0-9a-f]{6}$/, thrown.stderr);
  assert.doesNotMatch(namespaces(), new RegExp(`^${name}\\b`, 'm'));

  const killed = child(
    `const ns = createMediaNamespace(); console.log(ns.name); process.kill(process.pid, 'SIGKILL');`,
  );
  const left = killed.stdout.trim();
  assert.match(namespaces(), new RegExp(`^${left}\\b`, 'm'), 'SIGKILL runs no cleanup');
  createMediaNamespace().close();
  assert.doesNotMatch(namespaces(), new RegExp(`^${left}\\b`, 'm'), 'the next run removed the stale namespace');
  assert.equal(existsSync(path.join(os.tmpdir(), left)), false, 'and its worker wrapper');
});

test('without root, or without the ip command, it fails with a message that says why (it never skips)', () => {
  const notRoot = child('createMediaNamespace();', { user: 'nobody', env: { ...process.env, HOME: '/tmp' } });
  assert.notEqual(notRoot.status, 0);
  assert.match(notRoot.stderr, /needs root \(CAP_NET_ADMIN\)/);

  const noIp = child('createMediaNamespace();', { env: { ...process.env, PATH: '/nonexistent' } });
  assert.notEqual(noIp.status, 0);
  assert.match(noIp.stderr, /the `ip` command is missing; install iproute2/);
});
