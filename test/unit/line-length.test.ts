import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'vitest';

// Biome formats code to 120 columns but leaves comments and string literals as they are: this keeps those within it
// too. src/clickhouse/migrations.ts is exempt: an applied migration may be compared by its text, so its statements
// stay as they were written.

const ROOT = path.resolve(import.meta.dirname, '../..');
const MAX = 120;
const EXEMPT = new Set(['src/clickhouse/migrations.ts']);

test(`no line of src/ is longer than ${MAX} characters`, () => {
  const files = readdirSync(path.join(ROOT, 'src'), { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.[cm]?[jt]sx?$/.test(f))
    .map((f) => path.posix.join('src', f.split(path.sep).join('/')))
    .filter((f) => !EXEMPT.has(f))
    .sort();
  assert.ok(files.length > 50, `expected the sources under src/, found ${files.length} files`);
  const long: string[] = [];
  for (const file of files) {
    readFileSync(path.join(ROOT, file), 'utf8')
      .split('\n')
      .forEach((line, i) => {
        // Characters, not UTF-16 units: an accented letter or a dash is one column.
        const width = [...line].length;
        if (width > MAX) long.push(`${file}:${i + 1}: ${width} characters`);
      });
  }
  assert.deepEqual(
    long,
    [],
    `lines over ${MAX} characters (re-wrap the comment, split the string):\n${long.join('\n')}`,
  );
});
