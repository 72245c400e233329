import { test } from 'vitest';
import assert from 'node:assert/strict';
import { stripVTControlCharacters } from 'node:util';
import { prettyLogs } from '../src/logging.js';
import { startCompiledGateway } from './helpers/compiledGateway.js';

/** The compiled gateway's output once it has started, with what a terminal adds (colours, \r) taken off. */
async function startupOutput(opts: { tty: boolean; format?: string }): Promise<string[] & { coloured?: boolean }> {
  const env: Record<string, string> = { VIGIE_LOG_LEVEL: 'info', VIGIE_MEDIA_WORKERS: '1', TERM: 'xterm-256color' };
  if (opts.format) env.VIGIE_LOG_FORMAT = opts.format;
  const gw = await startCompiledGateway({ env, tty: opts.tty });
  const code = await gw.stop();
  assert.equal(code, 0, gw.output().slice(-2000));
  const plain = stripVTControlCharacters(gw.output());
  return Object.assign(plain.replaceAll('\r', '').split('\n'), { coloured: plain !== gw.output() });
}

const isJson = (line: string) => {
  try {
    return typeof JSON.parse(line).level === 'number';
  } catch {
    return false;
  }
};
/** pino-pretty's line: `[HH:MM:ss.mmm] LEVEL (component): message`. */
const PRETTY = /^\[\d{2}:\d{2}:\d{2}\.\d{3}\] (INFO|WARN|ERROR|DEBUG)( \([^)]*\))?: /;

test('in a terminal the log is one readable line per event, with its level and time; never JSON', async () => {
  const lines = await startupOutput({ tty: true });
  const listening = lines.find((l) => l.includes('Server listening at'));
  assert.match(listening ?? '', PRETTY, lines.join('\n'));
  assert.ok(
    lines.some((l) => PRETTY.test(l) && l.includes('mediasoup worker pool started')),
    lines.join('\n'),
  );
  assert.ok(!lines.some(isJson), `no JSON line in a terminal:\n${lines.join('\n')}`);
  assert.ok(lines.coloured, 'levels are coloured in a terminal');
});

test('into a pipe (a container log driver, a collector) the log stays one JSON object per line', async () => {
  const lines = await startupOutput({ tty: false });
  const logged = lines.filter(isJson).map((l) => JSON.parse(l));
  assert.ok(
    logged.some((l) => l.msg?.startsWith('Server listening at') && l.level === 30),
    lines.join('\n'),
  );
  assert.ok(logged.some((l) => l.msg === 'mediasoup worker pool started' && l.component === 'worker-pool'));
  assert.ok(!lines.some((l) => PRETTY.test(l)), 'no pretty line in a pipe');
});

test('VIGIE_LOG_FORMAT forces either: JSON in a terminal, pretty into a pipe', async () => {
  const inTerminal = await startupOutput({ tty: true, format: 'json' });
  assert.ok(
    inTerminal.some((l) => isJson(l) && JSON.parse(l).msg === 'mediasoup worker pool started'),
    inTerminal.join('\n'),
  );
  assert.ok(!inTerminal.some((l) => PRETTY.test(l)));
  const inPipe = await startupOutput({ tty: false, format: 'pretty' });
  assert.ok(
    inPipe.some((l) => PRETTY.test(l) && l.includes('mediasoup worker pool started')),
    inPipe.join('\n'),
  );
  assert.ok(!inPipe.some(isJson));
  assert.equal(inPipe.coloured, false, 'no colour codes in a file');
  assert.equal(prettyLogs('auto', true), true);
  assert.equal(prettyLogs('auto', false), false);
});
