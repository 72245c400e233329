import { test } from 'vitest';
import assert from 'node:assert/strict';
import net from 'node:net';
import { isComponentOutage } from '../../src/errors.js';
import { isConnectionError } from '../../src/store/index.js';
import { closedPort } from '../helpers/ports.js';

/** A real refusal from this machine's kernel, as a driver sees it. */
async function refusal(): Promise<Error> {
  const port = await closedPort();
  return new Promise((resolve) => net.connect(port, '127.0.0.1').once('error', resolve));
}

const pgError = (code: string, message = 'x') => Object.assign(new Error(message), { code });

test('an outage is told apart from a bug: one network predicate for every component, plus PostgreSQL states', async () => {
  const refused = await refusal();
  // Any component: the socket could not be used, or ClickHouse's client timed out.
  for (const err of [refused, new AggregateError([refused, refused]), new Error('Timeout error.')]) {
    assert.ok(isComponentOutage(err), String(err));
    assert.ok(isConnectionError(err), String(err));
  }
  // Only the control plane: a PostgreSQL server going away or refusing sessions, or `pg` losing its connection.
  for (const err of [
    pgError('08006'),
    pgError('57P01'),
    pgError('57P03'),
    pgError('53300'),
    new Error('Connection terminated unexpectedly'),
    new Error('Client has encountered a connection error and is not queryable'),
  ]) {
    assert.ok(isConnectionError(err), String(err));
    assert.ok(!isComponentOutage(err), `${err} is PostgreSQL's alone`);
  }
  // Bugs of ours stay bugs: a bad statement, a missing file, an aggregate with one real error among refusals.
  for (const err of [
    pgError('42P01', 'relation "x" does not exist'),
    pgError('ENOENT'),
    new AggregateError([refused, new TypeError('x is undefined')]),
    new Error('boom'),
    undefined,
    'ECONNREFUSED',
  ]) {
    assert.ok(!isComponentOutage(err), String(err));
    assert.ok(!isConnectionError(err), String(err));
  }
});
