#!/usr/bin/env node
// Vigie's DPO command line. It talks to a running gateway's REST API:
//   VIGIE_URL      (default http://127.0.0.1:8080)
//   VIGIE_API_KEY  a tenant API key with the dpo scope
//
//   vigie audit verify
//   vigie report subprocessors [--format json|md|html] [--out FILE]
//   vigie report ropa [--format json|md|html] [--out FILE]
//   vigie report audit --from ISO --to ISO [--format jsonl|csv|html|pdf] [--out FILE]
//   vigie dsar export --identity ID [--out FILE]
//   vigie dsar erase --identity ID
// Exports are written with their detached signature next to them (FILE.jws).
import { createWriteStream, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const USAGE = `usage: vigie audit verify
       vigie report subprocessors|ropa [--format json|md|html] [--out FILE]
       vigie report audit --from ISO --to ISO [--format jsonl|csv|html|pdf] [--out FILE]
       vigie dsar export --identity ID [--out FILE]
       vigie dsar erase --identity ID
environment: VIGIE_URL (default http://127.0.0.1:8080), VIGIE_API_KEY (a dpo key)`;

const [, , group, command, ...rest] = process.argv;
const opts = {};
for (let i = 0; i < rest.length; i += 2) {
  if (!rest[i]?.startsWith('--') || rest[i + 1] === undefined) fail(`bad option near "${rest[i] ?? ''}"`);
  opts[rest[i].slice(2)] = rest[i + 1];
}
const base = (process.env.VIGIE_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
const key = process.env.VIGIE_API_KEY;

function fail(message, code = 2) {
  console.error(`vigie: ${message}\n${USAGE}`);
  process.exit(code);
}

async function call(method, path, body) {
  if (!key) fail('VIGIE_API_KEY is not set');
  const res = await fetch(`${base}${path}`, { method, headers: { 'x-api-key': key, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined }).catch((e) => fail(`cannot reach ${base}: ${e.message}`, 1));
  if (!res.ok) {
    const err = await res.json().catch(() => ({}));
    fail(`${res.status} ${err.error?.code ?? ''}: ${err.error?.message ?? res.statusText}`, 1);
  }
  return res;
}

async function download(created, fallbackName) {
  const res = await call('GET', created.download);
  const out = opts.out ?? fallbackName;
  // Streamed to disk: an export of a long period is hundreds of megabytes.
  await pipeline(Readable.fromWeb(res.body), createWriteStream(out));
  writeFileSync(`${out}.jws`, `${created.jws}\n`);
  console.log(JSON.stringify({ file: out, signature: `${out}.jws`, sha256: created.sha256, kid: created.kid, verifyWith: `${base}/.well-known/jwks.json` }, null, 2));
}

const show = async (res) => {
  const text = await res.text();
  if (opts.out) writeFileSync(opts.out, text);
  else console.log(text);
};

if (group === 'audit' && command === 'verify') {
  const result = await (await call('GET', '/v1/compliance/audit/verify')).json();
  console.log(JSON.stringify(result, null, 2));
  process.exit(result.ok ? 0 : 3);
} else if (group === 'report' && (command === 'subprocessors' || command === 'ropa')) {
  await show(await call('GET', `/v1/compliance/reports/${command}?format=${opts.format ?? 'md'}`));
} else if (group === 'report' && command === 'audit') {
  if (!opts.from || !opts.to) fail('report audit needs --from and --to');
  const format = opts.format ?? 'jsonl';
  const created = await (await call('POST', '/v1/compliance/exports', { from: opts.from, to: opts.to, format })).json();
  await download(created, `vigie-audit-${created.id}.${format}`);
} else if (group === 'dsar' && command === 'export') {
  if (!opts.identity) fail('dsar export needs --identity');
  const created = await (await call('POST', '/v1/compliance/dsar/access', { identity: opts.identity })).json();
  await download(created, `vigie-dsar-${created.id}.tar`);
} else if (group === 'dsar' && command === 'erase') {
  if (!opts.identity) fail('dsar erase needs --identity');
  console.log(JSON.stringify(await (await call('POST', '/v1/compliance/dsar/erasure', { identity: opts.identity })).json(), null, 2));
} else {
  fail(group ? `unknown command "${[group, command].filter(Boolean).join(' ')}"` : 'no command');
}
