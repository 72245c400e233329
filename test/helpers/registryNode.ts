/**
 * A node that only registers and heartbeats, as its own process, so a test can
 * kill it (SIGKILL) the way a node dies: `node --import tsx registryNode.ts URL ID`.
 * Prints "registered" once its row and identity lock are taken.
 */
import { pino } from 'pino';
import type { Logger } from '../../src/logging.js';
import { NodeRegistry } from '../../src/nodes/index.js';
import { openDatabase } from '../../src/store/index.js';
import { registryOptions } from './nodes.js';

const [url, id] = process.argv.slice(2) as [string, string];
const db = await openDatabase({ url, dataDir: '/nonexistent' });
const registry = new NodeRegistry(db, registryOptions(id), pino({ level: 'silent' }) as unknown as Logger);
await registry.start();
console.log('registered');
setInterval(() => undefined, 60_000);
