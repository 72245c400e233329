#!/usr/bin/env node
// Vigie's DPO command line. It talks to a running gateway's REST API:
//   VIGIE_URL      (default http://127.0.0.1:8080)
//   VIGIE_API_KEY  a tenant API key with the dpo scope
// `vigie --help` lists the commands (bin/commands.mjs); `vigie <command> --help` gives each one's options.
// Data goes to stdout (or --out FILE); progress and errors go to stderr.
import { parseArgs } from 'node:util';
import {
  COMMANDS,
  CommandFailed,
  commandHelp,
  downloadTo,
  findCommand,
  generalHelp,
  progressReporter,
  UsageError,
} from './commands.mjs';

const argv = process.argv.slice(2);
const firstOption = argv.findIndex((a) => a.startsWith('-'));
const words = firstOption === -1 ? argv : argv.slice(0, firstOption);
const command = findCommand(words);

function usage(message, help = command ? commandHelp(command) : generalHelp()) {
  process.stderr.write(`vigie: ${message}\n\n${help}\n`);
  process.exit(2);
}

if (!command) {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(`${generalHelp()}\n`);
    process.exit(argv.length === 0 ? 2 : 0);
  }
  const group = COMMANDS.filter((c) => c.name.startsWith(`${argv[0]} `));
  if (group.length && argv.slice(1).some((a) => a === '--help' || a === '-h')) {
    process.stdout.write(`${generalHelp(group)}\n`);
    process.exit(0);
  }
  usage(`unknown command "${words.join(' ') || argv[0]}"`, generalHelp());
}

let parsed;
try {
  parsed = parseArgs({
    args: argv.slice(command.name.split(' ').length),
    options: {
      ...Object.fromEntries(Object.entries(command.options).map(([k, o]) => [k, { type: o.type }])),
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: Boolean(command.positionals),
    strict: true,
  });
} catch (err) {
  usage(err.message);
}
if (parsed.values.help) {
  process.stdout.write(`${commandHelp(command)}\n`);
  process.exit(0);
}

const base = (process.env.VIGIE_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
const key = process.env.VIGIE_API_KEY;

async function call(method, path, body) {
  if (!key && command.needsKey !== false) throw new UsageError('VIGIE_API_KEY is not set');
  const headers = { ...(key ? { 'x-api-key': key } : {}), ...(body ? { 'content-type': 'application/json' } : {}) };
  const res = await fetch(`${base}${path}`, { method, headers, body: body ? JSON.stringify(body) : undefined }).catch(
    (e) => {
      throw new CommandFailed(`cannot reach ${base}: ${e.message}`);
    },
  );
  if (!res.ok) {
    const err = await res.json().catch(() => ({}));
    throw new CommandFailed(`${res.status} ${err.error?.code ?? ''}: ${err.error?.message ?? res.statusText}`);
  }
  return res;
}

const ctx = {
  base,
  opts: parsed.values,
  positionals: parsed.positionals,
  call,
  log: (text) => process.stdout.write(`${text}\n`),
  // Only on a terminal, or when asked: a script reading stderr gets no noise.
  progress: progressReporter(process.stderr, Boolean(parsed.values.progress) || Boolean(process.stderr.isTTY)),
  download: (created, fallbackName, progress) => downloadTo(ctx, created, fallbackName, progress),
};

try {
  process.exitCode = await command.run(ctx);
} catch (err) {
  if (err instanceof UsageError) usage(err.message);
  process.stderr.write(`vigie: ${err instanceof CommandFailed ? err.message : err.stack}\n`);
  process.exit(err instanceof CommandFailed ? err.exitCode : 1);
}
