// The DPO command line's commands: one table, from which both dispatch and
// `--help` are made, so a command cannot exist without its help and example
// (test/dpo-cli.test.ts checks every entry). Run through bin/vigie.mjs.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compactVerify, createLocalJWKSet } from 'jose';

export class UsageError extends Error {}
export class CommandFailed extends Error {
  constructor(message, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

const option = {
  out: {
    type: 'string',
    value: 'FILE',
    help: 'write to FILE instead of stdout (exports: the file name; the signature goes to FILE.jws)',
  },
  lang: {
    type: 'string',
    value: 'en|fr',
    help: "language of the document (default: the tenant's default language, else English)",
  },
  progress: {
    type: 'boolean',
    help: 'show progress on stderr even when it is not a terminal (it is shown on a terminal anyway)',
  },
};
const formatOption = (formats, fallback) => ({
  type: 'string',
  value: formats.join('|'),
  help: `output format (default ${fallback})`,
});

/** @typedef {{ base: string, opts: Record<string, any>, positionals: string[], call: Function, download: Function, log: (text: string) => void, progress: Function }} Context */

export const COMMANDS = [
  {
    name: 'audit verify',
    summary:
      "Walks the tenant's audit chain against its signed checkpoints and their anchors; exit code 3 if anything was altered, deleted or inserted.",
    usage: 'vigie audit verify',
    example: 'vigie audit verify',
    options: {},
    async run(ctx) {
      const result = await (await ctx.call('GET', '/v1/compliance/audit/verify')).json();
      ctx.log(JSON.stringify(result, null, 2));
      return result.ok ? 0 : 3;
    },
  },
  ...['subprocessors', 'ropa'].map((report) => ({
    name: `report ${report}`,
    summary:
      report === 'ropa'
        ? 'The record of processing activities (GDPR art. 30), generated from the retention policies, the subprocessors and the storage configuration.'
        : 'The subprocessors and where data lives, checked against the running configuration (undeclared endpoints, locations outside France or the EU).',
    usage: `vigie report ${report} [--format json|md|html] [--lang en|fr] [--out FILE]`,
    example:
      report === 'ropa'
        ? 'vigie report ropa --format html --lang fr --out registre.html'
        : 'vigie report subprocessors --format md --out subprocessors.md',
    options: { format: formatOption(['json', 'md', 'html'], 'md'), lang: option.lang, out: option.out },
    async run(ctx) {
      const query = new URLSearchParams({
        format: ctx.opts.format ?? 'md',
        ...(ctx.opts.lang ? { lang: ctx.opts.lang } : {}),
      });
      const text = await (await ctx.call('GET', `/v1/compliance/reports/${report}?${query}`)).text();
      if (ctx.opts.out) writeFileSync(ctx.opts.out, text);
      else ctx.log(text);
      return 0;
    },
  })),
  {
    name: 'report audit',
    summary:
      'The audit export of a period (who accessed which personal data, every deletion and erasure, with its legal basis), with its detached signature beside it (FILE.jws).',
    usage:
      'vigie report audit --from ISO --to ISO [--format jsonl|csv|html|pdf] [--lang en|fr] [--out FILE] [--progress]',
    example:
      'vigie report audit --from 2026-10-01T00:00:00Z --to 2026-11-01T00:00:00Z --format pdf --lang fr --out audit-octobre.pdf',
    options: {
      from: { type: 'string', value: 'ISO', help: 'start of the period (ISO 8601, included)' },
      to: { type: 'string', value: 'ISO', help: 'end of the period (ISO 8601, excluded)' },
      format: formatOption(['jsonl', 'csv', 'html', 'pdf'], 'jsonl'),
      lang: option.lang,
      out: option.out,
      progress: option.progress,
    },
    async run(ctx) {
      if (!ctx.opts.from || !ctx.opts.to) throw new UsageError('report audit needs --from and --to');
      const format = ctx.opts.format ?? 'jsonl';
      const waiting = ctx.progress('report audit', 'the gateway is writing the export');
      const created = await (
        await ctx.call('POST', '/v1/compliance/exports', {
          from: ctx.opts.from,
          to: ctx.opts.to,
          format,
          ...(ctx.opts.lang ? { lang: ctx.opts.lang } : {}),
        })
      ).json();
      waiting.done(`${created.rows} entries written`);
      // JSON Lines holds one entry a line, so its lines count entries; other formats count in bytes only.
      await ctx.download(created, `vigie-audit-${created.id}.${format}`, {
        label: 'report audit',
        unit: 'entries',
        total: format === 'jsonl' ? created.rows : undefined,
        count: format === 'jsonl' ? countLines : undefined,
      });
      return 0;
    },
  },
  {
    name: 'dsar export',
    summary:
      "A data subject's access request: a signed tar archive of every row and recording about the person, with a manifest of SHA-256s.",
    usage: 'vigie dsar export --identity ID [--out FILE] [--progress]',
    example: 'vigie dsar export --identity alice.martin@example.fr --out alice.tar',
    options: {
      identity: { type: 'string', value: 'ID', help: 'the identity the business app gives the person' },
      out: option.out,
      progress: option.progress,
    },
    async run(ctx) {
      if (!ctx.opts.identity) throw new UsageError('dsar export needs --identity');
      const waiting = ctx.progress('dsar export', 'the gateway is gathering the archive');
      const created = await (
        await ctx.call('POST', '/v1/compliance/dsar/access', { identity: ctx.opts.identity })
      ).json();
      waiting.done(`${created.files.length} files gathered`);
      // Every file of the manifest, and the manifest itself.
      await ctx.download(created, `vigie-dsar-${created.id}.tar`, {
        label: 'dsar export',
        unit: 'files',
        total: created.files.length + 1,
        count: tarFileCounter(),
      });
      return 0;
    },
  },
  {
    name: 'dsar erase',
    summary:
      "A data subject's erasure request: deletes the person's rows and recordings, and lists what a legal hold or a COMPLIANCE lock keeps.",
    usage: 'vigie dsar erase --identity ID',
    example: 'vigie dsar erase --identity alice.martin@example.fr',
    options: { identity: { type: 'string', value: 'ID', help: 'the identity the business app gives the person' } },
    async run(ctx) {
      if (!ctx.opts.identity) throw new UsageError('dsar erase needs --identity');
      ctx.log(
        JSON.stringify(
          await (await ctx.call('POST', '/v1/compliance/dsar/erasure', { identity: ctx.opts.identity })).json(),
          null,
          2,
        ),
      );
      return 0;
    },
  },
  {
    name: 'verify',
    summary:
      "Checks an export or archive against its detached signature (FILE.jws) and the gateway's published keys (JWKS); needs no API key. Exit code 3 if it does not verify.",
    usage: 'vigie verify FILE [--signature FILE.jws]',
    example: 'vigie verify audit-octobre.pdf',
    positionals: ['FILE'],
    needsKey: false,
    options: { signature: { type: 'string', value: 'FILE.jws', help: 'the detached signature (default: FILE.jws)' } },
    async run(ctx) {
      const [file] = ctx.positionals;
      if (!file) throw new UsageError('verify needs the FILE to check');
      const readable = (f) => {
        if (!existsSync(f)) throw new CommandFailed(`cannot read ${f}: no such file`, 2);
        return f;
      };
      const jws = readFileSync(readable(ctx.opts.signature ?? `${file}.jws`), 'utf8').trim();
      const hash = createHash('sha256');
      for await (const chunk of createReadStream(readable(file))) hash.update(chunk);
      const sha256 = hash.digest('hex');
      const jwks = await (await ctx.call('GET', '/.well-known/jwks.json')).json();
      const [header, , signature] = jws.split('.');
      // The signed payload is the file's digest (src/compliance/signing.ts digestPayload).
      const payload = Buffer.from(JSON.stringify({ alg: 'SHA-256', digest: sha256 })).toString('base64url');
      const kid = JSON.parse(Buffer.from(header ?? '', 'base64url').toString() || '{}').kid;
      const ok = await compactVerify(`${header}.${payload}.${signature}`, createLocalJWKSet(jwks)).then(
        () => true,
        () => false,
      );
      ctx.log(JSON.stringify({ ok, file, sha256, kid, jwks: `${ctx.base}/.well-known/jwks.json` }, null, 2));
      return ok ? 0 : 3;
    },
  },
];

/** The command named by the leading words of `argv`, longest name first. */
export function findCommand(words) {
  return [...COMMANDS]
    .sort((a, b) => b.name.split(' ').length - a.name.split(' ').length)
    .find((c) => c.name.split(' ').every((w, i) => words[i] === w));
}

export function commandHelp(c) {
  const opts = Object.entries(c.options).map(
    ([name, o]) => `  --${name}${o.value ? ` ${o.value}` : ''}\n      ${o.help}`,
  );
  return [
    `usage: ${c.usage}`,
    '',
    c.summary,
    ...(opts.length ? ['', 'options:', ...opts] : []),
    '',
    `example:\n  ${c.example}`,
  ].join('\n');
}

export const ENVIRONMENT =
  'environment: VIGIE_URL (default http://127.0.0.1:8080), VIGIE_API_KEY (a tenant API key with the dpo scope)';

export function generalHelp(commands = COMMANDS) {
  return [
    'usage: vigie <command> [options]    (vigie <command> --help for its options)',
    '',
    'commands:',
    ...commands.map((c) => `  ${c.usage}\n      ${c.summary}\n      example: ${c.example}`),
    '',
    ENVIRONMENT,
  ].join('\n');
}

const MB = (bytes) => (bytes / 1e6).toFixed(1);

/**
 * Progress on stderr, never on stdout (which carries the command's data): a
 * line rewritten in place on a terminal, or a line at most every `everyMs`
 * (and the last one) when asked for with --progress elsewhere.
 */
export function progressReporter(stream, enabled, everyMs = 1000) {
  return (label, waitingFor) => {
    const tty = Boolean(stream.isTTY);
    let last = 0;
    const write = (text, final = false) => {
      if (!enabled) return;
      const now = Date.now();
      if (!final && now - last < everyMs) return;
      last = now;
      stream.write(tty ? `\r\x1b[2K${text}${final ? '\n' : ''}` : `${text}\n`);
    };
    write(`vigie: ${label}: ${waitingFor}…`, true);
    return {
      done: (what) => write(`vigie: ${label}: ${what}`, true),
      update: ({ done, total, unit, bytes, totalBytes }, final = false) => {
        const items =
          total === undefined
            ? ''
            : `${done} of ${total} ${unit}${total ? ` (${Math.round((100 * done) / total)}%)` : ''}, `;
        write(`vigie: ${label}: ${items}${MB(bytes)} of ${totalBytes === undefined ? '?' : MB(totalBytes)} MB`, final);
      },
    };
  };
}

/** A download's progress: bytes, and items counted by `count` (lines, tar members) as they pass. */
export function progressStream(reporter, { total, unit, count, totalBytes }) {
  let bytes = 0;
  let done = 0;
  return new Transform({
    transform(chunk, _enc, cb) {
      bytes += chunk.length;
      if (count) done += count(chunk);
      reporter.update({ done, total, unit, bytes, totalBytes });
      cb(null, chunk);
    },
    flush(cb) {
      reporter.update(
        { done: total === undefined ? done : Math.min(done, total), total, unit, bytes, totalBytes },
        true,
      );
      cb();
    },
  });
}

function countLines(chunk) {
  let n = 0;
  for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) n++;
  return n;
}

/**
 * Counts the regular files of a tar stream as they pass, from its 512-byte
 * headers (name, octal size at 124, type at 156), without unpacking it.
 */
export function tarFileCounter() {
  let seen = 0;
  let headerAt = 0;
  let buf = Buffer.alloc(0);
  let bufAt = 0;
  return (chunk) => {
    let files = 0;
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    seen += chunk.length;
    while (headerAt + 512 <= seen) {
      const h = buf.subarray(headerAt - bufAt, headerAt - bufAt + 512);
      if (h[0] === 0) {
        headerAt = Number.POSITIVE_INFINITY; // the end-of-archive blocks
        break;
      }
      const size = Number.parseInt(h.subarray(124, 136).toString('latin1').replace(/\0.*$/s, '').trim() || '0', 8);
      if (h[156] === 0 || h[156] === 0x30) files++;
      headerAt += 512 + Math.ceil(size / 512) * 512;
    }
    if (headerAt >= seen) {
      buf = Buffer.alloc(0);
      bufAt = seen;
    } else {
      buf = buf.subarray(headerAt - bufAt);
      bufAt = headerAt;
    }
    return files;
  };
}

/** Streams a created export to disk (it can be hundreds of megabytes), with its detached signature beside it. */
export async function downloadTo(ctx, created, fallbackName, progress) {
  const res = await ctx.call('GET', created.download);
  const out = ctx.opts.out ?? fallbackName;
  const length = res.headers.get('content-length');
  const reporter = ctx.progress(progress.label, 'downloading');
  await pipeline(
    Readable.fromWeb(res.body),
    progressStream(reporter, { ...progress, totalBytes: length === null ? undefined : Number(length) }),
    createWriteStream(out),
  );
  writeFileSync(`${out}.jws`, `${created.jws}\n`);
  ctx.log(
    JSON.stringify(
      {
        file: out,
        signature: `${out}.jws`,
        sha256: created.sha256,
        kid: created.kid,
        verifyWith: `${ctx.base}/.well-known/jwks.json`,
        verify: `vigie verify ${out}`,
      },
      null,
      2,
    ),
  );
}
