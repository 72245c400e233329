import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'vitest';
import { stringify } from 'yaml';
import { complianceShortenings, parseGuardFile, type PromisedLock } from '../../src/retention/guard.js';
import { DATA_CATEGORIES, loadPolicies, PolicyError, policyFor } from '../../src/retention/policy.js';
import { tempDir } from '../helpers/unit.js';

// The policy loader and the COMPLIANCE-lock guard on their own, on files in a temp dir: no gateway, no ClickHouse.
// retention.test.ts covers the same rules through the admin API, a reload and a restart.

type Rule = { duration: string; action?: string; lockMode?: string };

/** A policy file's content: every category deleted after 30 days, except what `rules` says. */
function policy(name: string, rules: Record<string, Rule> = {}, tenants: string[] = []) {
  const categories = Object.fromEntries(DATA_CATEGORIES.map((c) => [c, rules[c] ?? { duration: '30d' }]));
  return { name, tenants, categories };
}

function policyDir(files: Record<string, unknown>): string {
  const dir = tempDir('policies');
  for (const [file, content] of Object.entries(files)) {
    writeFileSync(path.join(dir, file), typeof content === 'string' ? content : stringify(content));
  }
  return dir;
}

const loadError = (files: Record<string, unknown>) => {
  try {
    loadPolicies(policyDir(files));
  } catch (err) {
    assert.ok(err instanceof PolicyError, `a PolicyError, not ${String(err)}`);
    return err.message;
  }
  assert.fail('the policy set was accepted');
};

const locked = (duration: string, lockMode = 'compliance') => ({ recordings: { duration, lockMode } });
const DAY = 86_400;

describe('retention policies', () => {
  test('a valid set loads with durations in seconds and defaults filled in; policyFor picks by tenant, then by name', () => {
    const set = loadPolicies(
      policyDir({
        'default.yaml': policy('default', { audit_log: { duration: '6y' }, access_log: { duration: '12h' } }),
        'bank.yml': policy('bank', locked('5y'), ['bank']),
        'notes.txt': 'not a policy',
      }),
    );
    assert.deepEqual([...set.keys()], ['bank', 'default'], 'only .yaml and .yml files, in name order');
    const def = set.get('default')!;
    assert.equal(def.categories.audit_log.duration, 6 * 365 * DAY);
    assert.equal(def.categories.access_log.duration, 12 * 3600);
    assert.deepEqual(def.categories.participants, {
      duration: 30 * DAY,
      action: 'delete',
      lockMode: 'none',
      legalHoldAllowed: true,
    });
    assert.equal(policyFor(set, 'bank', 'default').name, 'bank', 'a policy naming the tenant wins over its setting');
    assert.equal(policyFor(set, 'shop').name, 'default');
    assert.throws(
      () => policyFor(set, 'shop', 'gone'),
      /tenant "shop" names the retention policy "gone", which does not exist/,
    );
  });

  test('an invalid set is refused as a whole, each problem named with its file', () => {
    assert.match(loadError({ 'a.yaml': policy('a') }), /no policy named "default"/);
    assert.match(
      loadError({ 'default.yaml': policy('default', { recordings: { duration: '30 days' } }) }),
      /default\.yaml: categories\.recordings\.duration: a number and a unit/,
    );
    assert.match(
      loadError({ 'default.yaml': policy('default', { participants: { duration: '1d', action: 'anonymize' } }) }),
      /categories\.participants\.action: "anonymize" is not possible for participants/,
    );
    const missing = policy('default') as { categories: Record<string, unknown> };
    delete missing.categories.call_quality;
    assert.match(loadError({ 'default.yaml': missing }), /categories\.call_quality/);
    assert.match(loadError({ 'default.yaml': { ...policy('default'), retain: 'forever' } }), /default\.yaml: .*retain/);
    const twice = loadError({
      'default.yaml': policy('default'),
      'a.yaml': policy('a', {}, ['acme']),
      'b.yaml': policy('b', {}, ['acme']),
    });
    assert.match(twice, /tenant "acme" is claimed by policies "a" and "b"/);
    assert.match(
      loadError({ 'default.yaml': policy('default'), 'copy.yaml': policy('default') }),
      /policy "default" is defined twice/,
    );
  });
});

describe('the COMPLIANCE-lock guard', () => {
  const policies = () =>
    loadPolicies(
      policyDir({
        'default.yaml': policy('default', locked('30d', 'governance')),
        'regulated.yaml': policy('regulated', locked('5y')),
        'longer.yaml': policy('longer', locked('10y')),
        'shorter.yaml': policy('shorter', locked('1y')),
      }),
    );
  const promised = new Map<string, PromisedLock>([['bank', { policy: 'regulated', duration: 5 * 365 * DAY }]]);

  test('a lock may grow, and the longest one is what is promised from then on; it may not shrink or change mode', () => {
    const set = policies();
    const grown = complianceShortenings(promised, set, [{ id: 'bank', retentionPolicy: 'longer' }]);
    assert.deepEqual(grown.problems, []);
    assert.deepEqual(grown.locks.get('bank'), { policy: 'longer', duration: 10 * 365 * DAY });
    assert.equal(promised.get('bank')!.policy, 'regulated', 'the promises passed in are not changed');

    const shrunk = complianceShortenings(promised, set, [{ id: 'bank', retentionPolicy: 'shorter' }]);
    assert.equal(shrunk.problems.length, 1);
    assert.match(
      shrunk.problems[0]!,
      /cannot shrink from 157680000s \(policy "regulated"\) to 31536000s \(policy "shorter"\)/,
    );
    assert.deepEqual(shrunk.locks.get('bank'), promised.get('bank'), 'a refused change promises nothing new');

    const weaker = complianceShortenings(promised, set, [{ id: 'bank' }]);
    assert.match(weaker.problems[0]!, /locks them in governance mode/);

    // A tenant never promised anything may take any policy; a GOVERNANCE lock promises nothing.
    const fresh = complianceShortenings(new Map(), set, [{ id: 'shop' }, { id: 'bank', retentionPolicy: 'shorter' }]);
    assert.deepEqual(fresh.problems, []);
    assert.deepEqual([...fresh.locks.keys()], ['bank']);
  });

  test('the guard file of the version before the store: read as it was, corrupt is an error, never an empty guard', () => {
    const file = 'retention-applied.json';
    assert.deepEqual(parseGuardFile(file, { version: 2, locks: Object.fromEntries(promised) }, []), promised);
    for (const corrupt of [
      { version: 2, locks: { bank: { policy: 'regulated', duration: -1 } } },
      { version: 3, locks: {} },
      { vers: 1 },
    ]) {
      assert.throws(
        () => parseGuardFile(file, corrupt, []),
        (e: Error) => e instanceof PolicyError && /is corrupt .* restore it from a backup/s.test(e.message),
      );
    }
  });

  test("a version 1 guard (the applied policies by name) becomes the locks those policies promise to today's tenants", () => {
    const set = policies();
    const locks = parseGuardFile(
      'retention-applied.json',
      [set.get('regulated'), set.get('default')],
      [{ id: 'bank', retentionPolicy: 'regulated' }, { id: 'shop' }, { id: 'other', retentionPolicy: 'longer' }],
    );
    assert.deepEqual([...locks!], [['bank', { policy: 'regulated', duration: 5 * 365 * DAY }]]);
  });
});
