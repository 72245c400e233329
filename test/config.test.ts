import { test } from 'vitest';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, settingsMarkdownTable, SETTINGS } from '../src/config/index.js';

test('defaults load and describe a local gateway', () => {
  const c = loadConfig({});
  assert.equal(c.server.port, 8080);
  assert.equal(c.media.listenIp, '127.0.0.1');
  assert.equal(c.signaling.maxFrameBytes, 65536);
  assert.equal(c.server.publicUrl, 'http://127.0.0.1:8080');
  assert.deepEqual(c.tenants, []);
});

test('every bad value is named, with the variable that carried it and why', () => {
  try {
    loadConfig({
      VIGIE_PORT: '70000',
      VIGIE_MEDIA_LISTEN_IP: 'not-an-ip',
      VIGIE_AUTH_HS256_SECRET: 'short',
      VIGIE_LOG_LEVEL: 'loud',
    });
    assert.fail('expected a ConfigError');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    const text = err.problems.join('\n');
    assert.equal(err.problems.length, 4, text);
    assert.match(text, /VIGIE_PORT: .*65535.*70000/);
    assert.match(text, /VIGIE_MEDIA_LISTEN_IP: .*not-an-ip/);
    assert.match(text, /VIGIE_AUTH_HS256_SECRET: must be at least 32 characters/);
    assert.match(text, /VIGIE_LOG_LEVEL: .*loud/);
  }
});

test('cross-field rules: port range, TLS pair, TURN secret, announced address', () => {
  assert.throws(
    () => loadConfig({ VIGIE_MEDIA_RTC_MIN_PORT: '5000', VIGIE_MEDIA_RTC_MAX_PORT: '4000' }),
    /must be lower than VIGIE_MEDIA_RTC_MAX_PORT/,
  );
  assert.throws(() => loadConfig({ VIGIE_TLS_CERT_FILE: '/x.pem' }), /must be set together/);
  assert.throws(() => loadConfig({ VIGIE_TURN_URLS: 'turn:127.0.0.1:3478' }), /VIGIE_TURN_SECRET is not/);
  assert.throws(
    () => loadConfig({ VIGIE_TURN_URLS: 'http://x', VIGIE_TURN_SECRET: 'x'.repeat(16) }),
    /not a turn: or turns: URL/,
  );
  assert.throws(() => loadConfig({ VIGIE_MEDIA_LISTEN_IP: '0.0.0.0' }), /VIGIE_MEDIA_ANNOUNCED_ADDRESS/);
  assert.throws(
    () => loadConfig({ VIGIE_STATS_INTERVAL_MS: '500' }),
    /VIGIE_STATS_INTERVAL_MS: must be at least 1000 \(1 s\)/,
  );
  assert.equal(loadConfig({}).telemetry.statsIntervalMs, 5000);
});

test('config file is read, environment wins, tenants are validated', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-cfg-'));
  const file = path.join(dir, 'vigie.yaml');
  writeFileSync(
    file,
    [
      'server:',
      '  port: 9000',
      'media:',
      '  workers: 3',
      'tenants:',
      '  - id: acme',
      '    embedOrigins: ["https://crm.example.fr"]',
    ].join('\n'),
  );
  const c = loadConfig({ VIGIE_CONFIG_FILE: file, VIGIE_MEDIA_WORKERS: '1' });
  assert.equal(c.server.port, 9000);
  assert.equal(c.media.workers, 1);
  assert.equal(c.tenants[0]!.id, 'acme');
  assert.deepEqual(c.tenants[0]!.embedOrigins, ['https://crm.example.fr']);

  writeFileSync(
    file,
    ['tenants:', '  - id: Bad_Tenant', '    apiKeys: [{ id: k1, hash: "md5:abc" }]', 'mystery: 1'].join('\n'),
  );
  assert.throws(
    () => loadConfig({ VIGIE_CONFIG_FILE: file }),
    (err: ConfigError) =>
      err.problems.some((p) => p.includes('unknown top-level key "mystery"')) &&
      err.problems.some((p) => p.startsWith('tenants.0.id')) &&
      err.problems.some((p) => p.includes('sha256')),
  );
  assert.throws(() => loadConfig({ VIGIE_CONFIG_FILE: path.join(dir, 'missing.yaml') }), /cannot be read/);
});

test('a rejected secret is never echoed: not from the environment, the config file, a URL, nor a file that does not parse', () => {
  const secrets = {
    VIGIE_AUTH_HS256_SECRET: 'hs256-too-short-Zq81',
    VIGIE_TURN_SECRET: 'turn-short-Zq82',
    VIGIE_PSEUDONYM_SECRET: 'pseudonym-too-short-Zq83',
    VIGIE_S3_SECRET_KEY: 'Zq84',
    VIGIE_ADMIN_KEY_HASH: 'vk_admin_clear_key_Zq85',
  };
  const problems = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return `${err.message}\n${err.problems.join('\n')}`;
    }
    return assert.fail('expected a ConfigError');
  };
  const fromEnv = problems(() => loadConfig(secrets));
  for (const [name, value] of Object.entries(secrets)) {
    assert.match(fromEnv, new RegExp(`${name}: .*not shown: it is secret`), `${name} is named`);
    assert.ok(!fromEnv.includes(value), `${name}'s value is not echoed`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-cfg-secret-'));
  const file = path.join(dir, 'vigie.yaml');
  writeFileSync(
    file,
    ['clickhouse:', '  password: 12345678', '  url: "http://vigie:pw-in-url-Zq86@clickhouse:bad"'].join('\n'),
  );
  const fromFile = problems(() => loadConfig({ VIGIE_CONFIG_FILE: file }));
  assert.match(fromFile, /clickhouse\.password .*not shown: it is secret/);
  assert.ok(!fromFile.includes('12345678'), fromFile);
  assert.match(fromFile, /clickhouse\.url .*<credentials>@clickhouse:bad/);
  assert.ok(!fromFile.includes('pw-in-url-Zq86'), fromFile);
  writeFileSync(file, ['auth:', '  hs256Secret: a: yaml-secret-Zq87'].join('\n'));
  const badYaml = problems(() => loadConfig({ VIGIE_CONFIG_FILE: file }));
  assert.match(badYaml, /cannot be read: invalid YAML .*line 2/);
  assert.ok(!badYaml.includes('Zq87'), badYaml);
  const json = path.join(dir, 'vigie.json');
  writeFileSync(json, '{"auth": {"hs256Secret": json-secret-Zq88}}');
  const badJson = problems(() => loadConfig({ VIGIE_CONFIG_FILE: json }));
  assert.match(badJson, /cannot be read: invalid JSON/);
  assert.ok(!badJson.includes('Zq88'), badJson);
});

test("the operators' guide documents every setting (table generated from the settings list)", () => {
  const guide = readFileSync(new URL('../docs/operators.md', import.meta.url), 'utf8');
  assert.ok(
    guide.includes(settingsMarkdownTable()),
    'the settings table of docs/operators.md is out of date: run npm run docs:settings',
  );
  for (const s of SETTINGS) assert.ok(guide.includes(`\`${s.env}\``), s.env);
});
