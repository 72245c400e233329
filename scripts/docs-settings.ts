/** Rewrites the README's settings table from src/config/settings.ts. */
import { readFileSync, writeFileSync } from 'node:fs';
import { settingsMarkdownTable } from '../src/config/index.js';

const file = new URL('../README.md', import.meta.url);
const readme = readFileSync(file, 'utf8');
const start = readme.indexOf('<!-- settings:start');
const end = readme.indexOf('<!-- settings:end -->');
if (start < 0 || end < 0) throw new Error('README.md has no settings markers');
const head = readme.slice(0, readme.indexOf('\n', start) + 1);
writeFileSync(file, `${head}${settingsMarkdownTable()}\n${readme.slice(end)}`);
console.log('README settings table updated');
