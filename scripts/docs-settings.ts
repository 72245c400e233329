/** Rewrites the settings table of the operators' guide (docs/operators.md) from src/config/settings.ts. */
import { readFileSync, writeFileSync } from 'node:fs';
import { settingsMarkdownTable } from '../src/config/index.js';

const file = new URL('../docs/operators.md', import.meta.url);
const guide = readFileSync(file, 'utf8');
const start = guide.indexOf('<!-- settings:start');
const end = guide.indexOf('<!-- settings:end -->');
if (start < 0 || end < 0) throw new Error('docs/operators.md has no settings markers');
const head = guide.slice(0, guide.indexOf('\n', start) + 1);
writeFileSync(file, `${head}${settingsMarkdownTable()}\n${guide.slice(end)}`);
console.log('docs/operators.md settings table updated');
