/**
 * The guides keep working: the README and every guide in docs/ are read as a newcomer would use them. Each relative
 * link leads to a file (and each #anchor to a heading of it), each repository path and test a guide names exists,
 * each command it gives is one the project has, and each environment variable it names is read by something.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { describe, test } from 'vitest';
import { SETTINGS } from '../src/config/settings.js';
import { COMMANDS } from '../bin/commands.mjs';

const ROOT = path.resolve(import.meta.dirname, '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

/** The front page and one guide per audience. Drafts in docs/_incoming are not guides yet. */
const GUIDES = [
  'README.md',
  ...readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

/**
 * Files a guide may link to before they exist on this branch, each made by another part of the work. Once the file
 * exists the entry must go (the link test says so), so this list only ever shrinks.
 */
const PENDING = new Map<string, string>([]);

interface Guide {
  file: string;
  text: string;
  /** The text with fenced code blocks blanked (same length, so offsets still give line numbers). */
  prose: string;
  /** Inline code spans outside fenced blocks, and every line of fenced blocks (commands to run as given). */
  code: Array<{ text: string; at: number; fenced: boolean }>;
}

function load(file: string): Guide {
  const text = read(file);
  const code: Guide['code'] = [];
  const prose = text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, (block, _fence, at: number) => {
    let offset = at;
    for (const line of block.split('\n')) {
      code.push({ text: line, at: offset, fenced: true });
      offset += line.length + 1;
    }
    return block.replace(/[^\n]/g, ' ');
  });
  for (const m of prose.matchAll(/`([^`\n]+)`/g)) code.push({ text: m[1]!, at: m.index!, fenced: false });
  return { file, text, prose, code };
}

const guides = GUIDES.map(load);
const where = (g: Guide, at: number) => `${g.file}:${g.text.slice(0, at).split('\n').length}`;

/** GitHub's heading anchors: the heading's text, lower-cased, without punctuation, spaces as dashes; repeats get -1. */
function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6}\s+(.+?)\s*#*$/gm)) {
    const text = m[1]!.replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/[`*]/g, '');
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of markdown.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1]!);
  return anchors;
}

const anchorCache = new Map<string, Set<string>>();
function anchorsOfFile(file: string): Set<string> {
  if (!anchorCache.has(file)) anchorCache.set(file, anchorsOf(load(file).prose));
  return anchorCache.get(file)!;
}

describe.each(guides)('$file', (guide) => {
  test('every relative link leads to an existing file, and every #anchor to a heading of it', () => {
    const problems: string[] = [];
    for (const m of guide.prose.matchAll(/!?\[[^\]]*\]\(<?([^)\s>]+)>?(?:\s+"[^"]*")?\)/g)) {
      const target = m[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:: not ours to check offline
      const [file, anchor] = target.split('#') as [string, string | undefined];
      const resolved = file
        ? path.relative(ROOT, path.resolve(ROOT, path.dirname(guide.file), decodeURI(file)))
        : guide.file;
      const here = `${where(guide, m.index!)}: ${target}`;
      const exists = existsSync(path.join(ROOT, resolved));
      if (resolved.startsWith('..')) problems.push(`${here}: leaves the repository`);
      else if (PENDING.has(resolved)) {
        if (exists) problems.push(`${here}: ${resolved} exists now; remove it from PENDING in test/docs.test.ts`);
      } else if (!exists) problems.push(`${here}: no such file ${resolved}`);
      else if (anchor !== undefined && resolved.endsWith('.md') && !anchorsOfFile(resolved).has(anchor)) {
        problems.push(`${here}: ${resolved} has no heading with the anchor #${anchor}`);
      }
    }
    assert.deepEqual(problems, []);
  });

  test('every repository path it names exists, and every test name it quotes is in the test file it names', () => {
    const problems: string[] = [];
    for (const { text, at } of guide.code) {
      for (const m of text.matchAll(REPOSITORY_PATH)) {
        const file = m[1]!;
        if (!existsSync(path.join(ROOT, file)) && !PENDING.has(file)) {
          problems.push(`${where(guide, at)}: no such file or folder ${file}`);
        }
      }
    }
    // `test/x.test.ts` ("a test's name…", "another…"): each quoted name, up to its ellipsis, is in that file.
    for (const m of guide.prose.matchAll(/`(test\/[\w.-]+\.test\.ts)`\s*\(/g)) {
      const names = quotedNames(guide.prose, m.index! + m[0].length);
      const file = path.join(ROOT, m[1]!);
      if (!existsSync(file)) continue; // named above
      const source = readFileSync(file, 'utf8')
        .replace(/\\(['"`])/g, '$1')
        .replace(/\s+/g, ' ');
      for (const name of names) {
        if (!source.includes(name)) problems.push(`${where(guide, m.index!)}: ${m[1]} has no test named "${name}…"`);
      }
    }
    assert.deepEqual(problems, []);
  });

  test('every npm script, vigie command, script path and environment variable it gives exists', () => {
    const problems: string[] = [];
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    for (const { text, at, fenced } of guide.code) {
      const here = where(guide, at);
      for (const m of text.matchAll(/\bnpm (?:run ([\w:-]+)|(start|test)\b)/g)) {
        const script = m[1] ?? m[2]!;
        if (!scripts[script]) problems.push(`${here}: npm run ${script} is not a script of package.json`);
      }
      for (const m of text.matchAll(NODE_SCRIPT)) {
        const script = m[2]!.replace(/^dist\/server\/(.*)\.js$/, 'src/$1.ts'); // the compiled gateway comes from src/
        if (!existsSync(path.join(ROOT, script))) problems.push(`${here}: no script ${m[2]}`);
      }
      for (const args of vigieCommands(text)) {
        // One word (`verify`, `--help`) or a group and a command (`report audit`).
        const command = CLI_COMMANDS.has(args[0]!) ? args[0]! : args.slice(0, 2).join(' ');
        const options = CLI_COMMANDS.get(command);
        if (!options) problems.push(`${here}: vigie ${command} is not a command of bin/vigie.mjs`);
        for (const option of options ? args.filter((a) => a.startsWith('--') && !options.has(a)) : []) {
          problems.push(`${here}: vigie ${command} has no option ${option}`);
        }
        // A command that reads a file the guide names (`verify FILE`) is checked by its options only.
        const readsFile = COMMANDS.some((c) => c.name === command && c.positionals?.length);
        if (options && fenced && !readsFile) {
          // A full command line, run as given against a port nothing listens on: a valid one gets as far as
          // connecting and fails with 1; a usage error (an unknown or missing option) is 2.
          const run = spawnSync(process.execPath, [path.join(ROOT, 'bin/vigie.mjs'), ...args], {
            env: { ...process.env, VIGIE_URL: 'http://127.0.0.1:1', VIGIE_API_KEY: 'vk_docs_test' },
            cwd: ROOT,
            encoding: 'utf8',
          });
          if (run.status === 2) problems.push(`${here}: vigie ${args.join(' ')}: ${run.stderr.split('\n')[0]}`);
        }
      }
      for (const name of environmentVariables(text)) {
        const problem = unknownVariable(name);
        if (problem) problems.push(`${here}: ${name} ${problem}`);
      }
    }
    assert.deepEqual(problems, []);
  });
});

/** A path in the repository, in code: `src/…`, `test/…`, `docs/…` and the other top-level folders. */
const REPOSITORY_PATH =
  /(?<![\w./-])((?:src|test|scripts|bench|bin|deploy|dashboards|compliance|retention-policies|packages|docs|\.ci)\/[\w./-]*[\w/])/g;

/** `node script.js`, `npx tsx script.ts`, with options before the script. */
const NODE_SCRIPT = /(?:^|\s)(?:npx )?(?:tsx|node)((?: --?[\w-]+(?:=\S+)?)*) ((?!-)[\w./-]+\.(?:ts|mts|js|mjs|cjs))\b/g;

/** The quoted strings ("…", “…” or *…*) inside the parentheses that start at `from`, each cut at its ellipsis. */
function quotedNames(prose: string, from: number): string[] {
  const names: string[] = [];
  let depth = 1;
  for (let i = from; i < prose.length && depth > 0; i++) {
    const c = prose[i]!;
    const close = c === '"' ? '"' : c === '“' ? '”' : c === '*' ? '*' : undefined;
    if (close) {
      const end = prose.indexOf(close, i + 1);
      if (end < 0) break;
      const name = prose
        .slice(i + 1, end)
        .replace(/\s+/g, ' ')
        .replace(/\s*(…|\.\.\.).*$/, '')
        .trim();
      if (name) names.push(name);
      i = end;
    } else if (c === '(') depth++;
    else if (c === ')') depth--;
  }
  return names;
}

/** The CLI's commands (its command table, which also prints its help), each with its options and the global ones. */
const CLI_COMMANDS = new Map<string, Set<string>>([
  ['--help', new Set(['--help'])],
  ...COMMANDS.map((c) => [c.name, new Set(['--help', ...Object.keys(c.options).map((o) => `--${o}`)])] as const),
]);

const VIGIE_ARGS = /(?: [^\s;&|#]+(?:\|[^\s;&|#]+)*| \[[^\]]*\])*/.source;

/** `npx vigie …` (or a code line `vigie …`) as argument lists: `[--opt …]` dropped, `a|b` alternatives each. */
function vigieCommands(code: string): string[][] {
  const m =
    new RegExp(`(?:^|\\s)npx vigie(${VIGIE_ARGS})`).exec(code) ?? new RegExp(`^\\s*vigie(${VIGIE_ARGS})`).exec(code);
  if (!m?.[1]?.trim() || m[1].trim().startsWith('…')) return []; // `npx vigie …`: the command line as a whole
  const words = m[1]!
    .replace(/\[[^\]]*\]/g, ' ')
    .trim()
    .split(/\s+/)
    .map((w) => (w === '…' || w === 'FILE' ? 'x' : w));
  const alternatives = words.findIndex((w) => w.includes('|') && !w.startsWith('-'));
  if (alternatives < 0) return [words.map((w) => w.split('|')[0]!)];
  return words[alternatives]!.split('|').map((alt) =>
    words.map((w, i) => (i === alternatives ? alt : w.split('|')[0]!)),
  );
}

/** Names in code that look like environment variables: `NAME`, `NAME=value`, `export NAME=…`, `NAME=… command`. */
function environmentVariables(code: string): string[] {
  const names = new Set<string>();
  const whole = /^(?:export )?([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?:=\S*)?$/.exec(code.trim());
  if (whole) names.add(whole[1]!);
  for (const m of code.matchAll(/(?:^|\s)(?:export )?([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)=/g)) names.add(m[1]!);
  return [...names];
}

const SETTING_ENVS = new Set(SETTINGS.map((s) => s.env));
/** The repository's own files that read or define variables and constants: what a named variable must be found in. */
const SOURCES = ['src', 'bin', 'scripts', 'test', 'bench', 'dashboards', 'deploy', 'packages']
  .flatMap((dir) =>
    readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' }).map((f) => path.join(dir, f)),
  )
  .filter(
    (f) => /\.(ts|mjs|js|sh|ya?ml|json)$/.test(f) && !/node_modules|\/dist\//.test(f) && f !== 'test/docs.test.ts',
  )
  .concat(['docker-compose.yml', '.env.example', 'Dockerfile'])
  .map((f) => read(f))
  .join('\n');
const CLI = read('bin/vigie.mjs');

function unknownVariable(name: string): string | undefined {
  if (SETTING_ENVS.has(name)) return undefined;
  if (/^(VIGIE|CLICKHOUSE|MEDIASOUP)_/.test(name)) {
    // The gateway's own variables are settings; the DPO command line reads two more of its own.
    return CLI.includes(`process.env.${name}`) ? undefined : 'is not a setting in src/config/settings.ts';
  }
  // Anything else (standard OTEL_* variables, compose-only ones, code constants) must be something the code uses.
  return new RegExp(`\\b${name}\\b`).test(SOURCES) ? undefined : 'is neither a setting nor used anywhere in the code';
}
