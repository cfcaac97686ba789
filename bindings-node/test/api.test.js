'use strict';
// The Node API without the network: options by name through the core,
// errors as typed classes with the core's codes, value conversion, memory
// mode, module formats, types, and worker threads.

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');
const { Worker } = require('node:worker_threads');
const trackcore = require('..');
const { Tracker, Money, RichLink, TrackError, InvalidEventError, InvalidTypeError, TrackerClosedError, ConfigError } = trackcore;
const { runNode } = require('./helpers');

const PKG = join(__dirname, '..');

function memoryTracker(t, options = {}) {
  const tracker = new Tracker({ memory: true, ...options });
  t.after(() => tracker.shutdown({ timeoutMs: 2000 }));
  return tracker;
}

function thrown(f) {
  try {
    f();
  } catch (e) {
    return e;
  }
  assert.fail('expected an exception');
}

test('options() lists every core option in camelCase with the core default', () => {
  const opts = trackcore.options();
  const names = opts.map((o) => o.name);
  assert.ok(names.includes('queueCapacity') && names.includes('rateLimitPerMinute') && names.includes('accessToken'));
  for (const o of opts) {
    assert.equal(o.name, o.coreName.replace(/_([a-z])/g, (_, c) => c.toUpperCase()));
    assert.ok(['str', 'int', 'float', 'bool', 'list'].includes(o.kind), o.kind);
  }
  assert.equal(opts.find((o) => o.name === 'queueCapacity').default, '200000');
});

test('every core option is accepted by its camelCase name', (t) => {
  const values = { str: null, int: null, float: 1.5, bool: true, list: ['a'] };
  for (const o of trackcore.options()) {
    const v = o.name === 'memory' ? true : values[o.kind];
    const tracker = memoryTracker(t, { [o.name]: v });
    assert.ok(tracker);
  }
});

test('an unknown option is a ConfigError naming it as the caller spelt it', () => {
  const e = thrown(() => new Tracker({ memory: true, queueCapacty: 10 }));
  assert.ok(e instanceof ConfigError && e instanceof TrackError);
  assert.equal(e.code, 'invalid_config');
  assert.equal(e.field, 'config.queueCapacty');
  assert.match(e.message, /unknown option/);
});

test('an invalid option value is a ConfigError with the core rule', () => {
  const e = thrown(() => new Tracker({ memory: true, queueCapacity: 0 }));
  assert.equal(e.field, 'config.queueCapacity');
  assert.match(e.message, /below the minimum of 1/);
  const r = thrown(() => new Tracker({ memory: true, region: 'mars' }));
  assert.equal(r.code, 'invalid_config');
  assert.match(r.message, /us, eu, au/);
  const ty = thrown(() => new Tracker({ memory: true, maxRetries: 'ten' }));
  assert.match(ty.message, /expected int, got str/);
});

test('a missing access token is a ConfigError; the token never appears in errors', () => {
  const saved = process.env.INTERCOM_ACCESS_TOKEN;
  delete process.env.INTERCOM_ACCESS_TOKEN;
  let e;
  try {
    e = thrown(() => new Tracker({ accessToken: '' }));
  } finally {
    if (saved !== undefined) process.env.INTERCOM_ACCESS_TOKEN = saved;
  }
  assert.equal(e.code, 'missing_access_token');
  const bad = thrown(() => new Tracker({ accessToken: 'tok_supersecret', overflow: 'sometimes' }));
  assert.ok(!bad.message.includes('supersecret') && !bad.stack.includes('supersecret'));
  const tracker = new Tracker({ accessToken: 'tok_supersecret', baseUrl: 'http://127.0.0.1:9' });
  assert.ok(!String(tracker).includes('supersecret'));
  return tracker.shutdown({ timeoutMs: 0 });
});

test('invalid input throws InvalidEventError with the core code, field and rule', (t) => {
  const tracker = memoryTracker(t);
  const e = thrown(() => tracker.track('upgraded-plan', { metadata: { plan: 'pro' } }));
  assert.ok(e instanceof InvalidEventError && e instanceof TrackError && e instanceof Error);
  assert.equal(e.code, 'missing_identity');
  assert.equal(e.field, 'user_id');
  const many = thrown(() => tracker.track('x', { userId: 'u', metadata: Object.fromEntries([...Array(11).keys()].map((i) => [`k${i}`, i])) }));
  assert.equal(many.code, 'too_many_metadata_keys');
  assert.match(many.message, /at most 10/);
  assert.ok(e.stack.split('\n')[1].includes('api.test.js'), 'the stack starts at the caller');
});

test('values of types Intercom cannot take throw InvalidTypeError naming the key', (t) => {
  const tracker = memoryTracker(t);
  const cases = [
    [{ list: [1] }, 'array_not_supported', 'metadata.list'],
    [{ nested: { a: 1 } }, 'nested_object_not_supported', 'metadata.nested'],
    [{ m: new Map() }, 'unsupported_type', 'metadata.m'],
    [{ f: () => 1 }, 'unsupported_type', 'metadata.f'],
    [{ s: Symbol('x') }, 'unsupported_type', 'metadata.s'],
    [{ huge: 2n ** 70n }, 'number_out_of_range', 'metadata.huge'],
    [{ nan: NaN }, 'non_finite_number', 'metadata.nan'],
    [{ when: new Date(0) }, 'date_requires_date_key', 'metadata.when'],
  ];
  for (const [metadata, code, field] of cases) {
    const e = thrown(() => tracker.track('x', { userId: 'u', metadata }));
    assert.ok(e instanceof TrackError, `${field}: ${e}`);
    assert.equal(e.code, code, field);
    assert.equal(e.field, field);
  }
  const m = thrown(() => tracker.track('x', { userId: 'u', metadata: { m: new Map() } }));
  assert.ok(m instanceof InvalidTypeError);
  assert.match(m.message, /Map/);
});

test('wrong argument types are typed errors, never crashes', (t) => {
  const tracker = memoryTracker(t);
  const cases = [
    [() => tracker.track(42, { userId: 'u' }), 'event_name'],
    [() => tracker.track('x', { userId: {} }), 'user_id'],
    [() => tracker.track('x', { userId: 1.5 }), 'user_id'],
    [() => tracker.track('x', { email: 5 }), 'email'],
    [() => tracker.track('x', { userId: 'u', createdAt: '2024-01-01' }), 'created_at'],
    [() => tracker.track('x', { userId: 'u', createdAt: 1700000000.5 }), 'created_at'],
    [() => tracker.track('x', { userId: 'u', createdAt: new Date(NaN) }), 'created_at'],
    [() => tracker.track('x', { userId: 'u', metadata: [1] }), 'metadata'],
    [() => tracker.track('x', { userId: 'u', metadata: 'plan=pro' }), 'metadata'],
    [() => tracker.track('x', { user_id: 'u' }), 'user_id'],
    [() => tracker.track('x', 'u-1'), 'options'],
  ];
  for (const [call, field] of cases) {
    const e = thrown(call);
    assert.ok(e instanceof InvalidTypeError, `${field}: ${e}`);
    assert.equal(e.code, 'unsupported_type');
    assert.equal(e.field, field);
  }
});

test('values convert as documented: numbers, bigints, Dates, Money, RichLink, null omitted', async (t) => {
  const tracker = memoryTracker(t);
  const created = new Date(1700000000500);
  tracker.track('paid', {
    userId: 42,
    createdAt: created,
    metadata: {
      seats: 5, ratio: 0.5, big: 2n ** 40n, annual: false, gone: null, missing: undefined,
      price: new Money(34999, 'eur'), doc: new RichLink('https://example.org', 'Docs'), renewal_date: new Date(1767225600000),
    },
  });
  tracker.track('paid', { userId: 7n, createdAt: 1700000001n });
  const [a, b] = await tracker.recorded();
  assert.deepEqual(a, {
    event_name: 'paid', created_at: 1700000000, user_id: '42',
    metadata: { seats: 5, ratio: 0.5, big: 2 ** 40, annual: false, price: { amount: 34999, currency: 'eur' }, doc: { url: 'https://example.org', value: 'Docs' }, renewal_date: 1767225600 },
  });
  assert.equal(b.user_id, '7');
  assert.equal(b.created_at, 1700000001);
});

test('memory mode records through the real pipeline: de-duplication and stats', async (t) => {
  const tracker = memoryTracker(t);
  assert.equal(tracker.memory, true);
  for (let i = 0; i < 3; i++) tracker.track('same', { userId: 'u', createdAt: 1700000000 });
  assert.equal((await tracker.recorded()).length, 1);
  const s = tracker.stats();
  assert.equal(s.tracked, 3);
  assert.equal(s.deduplicated, 2);
  assert.equal(s.tracked, s.delivered + s.failed + s.dropped + s.deduplicated + s.queued + s.inFlight);
  tracker.clearRecorded();
  assert.deepEqual(await tracker.recorded(), []);
});

test('after shutdown, track throws TrackerClosedError and shutdown is idempotent', async () => {
  const tracker = new Tracker({ memory: true });
  assert.equal(await tracker.shutdown(), true);
  assert.equal(await tracker.shutdown(), true);
  const e = thrown(() => tracker.track('x', { userId: 'u' }));
  assert.ok(e instanceof TrackerClosedError);
  assert.equal(e.code, 'closed');
});

test('flush and shutdown reject bad timeouts with a ConfigError', async (t) => {
  const tracker = memoryTracker(t);
  await assert.rejects(tracker.flush({ timeoutMs: -1 }), ConfigError);
  await assert.rejects(tracker.flush({ timeoutMs: 'soon' }), ConfigError);
});

test('loads from CommonJS and ESM as the same module', async () => {
  const url = pathToFileURL(join(PKG, 'index.mjs')).href;
  const esm = await runNode(
    `import t, { Tracker, ERROR_CODES } from '${url}';` +
      " const x = new Tracker({ memory: true }); x.track('e', { userId: 'u' }); " +
      "console.log(JSON.stringify({ same: t.Tracker === Tracker, codes: ERROR_CODES.length, n: (await x.recorded()).length })); await x.shutdown();",
    { args: ['--input-type=module'] },
  );
  assert.equal(esm.code, 0, esm.stderr);
  assert.deepEqual(JSON.parse(esm.stdout), { same: true, codes: trackcore.ERROR_CODES.length, n: 1 });
});

test('index.d.ts type-checks under tsc --strict (usage compiles, misuse does not)', () => {
  const tsc = join(PKG, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(process.execPath, [tsc, '-p', join(PKG, 'test', 'types')], { stdio: 'pipe' });
});

function inWorker(code) {
  return new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { pkg: PKG } });
    const messages = [];
    w.on('message', (m) => messages.push(m));
    w.on('error', reject);
    w.on('exit', (code) => resolve({ code, messages }));
  });
}

test('each worker thread gets its own tracker', async () => {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { Tracker } = require(workerData.pkg);
    const t = new Tracker({ memory: true });
    t.track('in-worker', { userId: 'w' });
    t.recorded().then(async (r) => { parentPort.postMessage(r.length); await t.shutdown(); });`;
  const results = await Promise.all([inWorker(code), inWorker(code), inWorker(code)]);
  for (const r of results) assert.deepEqual(r, { code: 0, messages: [1] });
});

test('a tracker passed to another thread is an error there, not a crash', async () => {
  const tracker = new Tracker({ memory: true });
  let posted;
  try {
    const w = new Worker(`const { parentPort } = require('node:worker_threads'); parentPort.once('message', () => {});`, { eval: true });
    try {
      w.postMessage(tracker);
      posted = 'cloned';
    } catch (e) {
      posted = e.name;
    }
    await w.terminate();
  } finally {
    await tracker.shutdown();
  }
  // Either the structured clone refuses it, or what arrives is a plain object
  // without the native tracker: calling the API on it throws a TypeError.
  assert.ok(posted === 'DataCloneError' || posted === 'cloned', posted);
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { Tracker } = require(workerData.pkg);
    const t = new Tracker({ memory: true });
    parentPort.postMessage(t.stats().tracked);
    const clone = structuredClone(t);
    try { Tracker.prototype.track.call(clone, 'x', { userId: 'u' }); parentPort.postMessage('no error'); }
    catch (e) { parentPort.postMessage(e.constructor.name); }
    t.shutdown();`;
  const r = await inWorker(code);
  assert.equal(r.code, 0);
  assert.deepEqual(r.messages, [0, 'TypeError']);
});
