'use strict';
// Against the real emulator over HTTP: delivery, retry, permanent failure to
// onError, flush/shutdown bounds (with the request held at the emulator's
// gate, never timed by sleeps), logs, and processes that exit by themselves.

const test = require('node:test');
const assert = require('node:assert/strict');
const { join } = require('node:path');
const { Tracker, DeliveryError, TrackerClosedError } = require('..');
const { emulator, deferred, runNode, TOKEN } = require('./helpers');

const PKG = join(__dirname, '..');
// Generous: bounds are asserted from above on a loaded 2-core machine.
const SLACK_MS = 1500;

function tracker(t, emu, options = {}) {
  const tr = new Tracker({ accessToken: emu.token, baseUrl: emu.url, ...options });
  t.after(() => tr.shutdown({ timeoutMs: 0 }));
  return tr;
}

test('delivers events to Intercom with the node user agent', async (t) => {
  const emu = await emulator(t);
  const tr = tracker(t, emu);
  tr.track('upgraded-plan', { userId: 'u-123', metadata: { plan: 'pro', seats: 5, annual: true } });
  tr.track('read-article', { email: 'r@example.com' });
  assert.equal(await tr.flush({ timeoutMs: 10000 }), true);
  // Several requests are in flight at once, so arrival order is not tracking order.
  const events = await emu.waitEvents(2);
  assert.deepEqual(events.map((e) => e.event_name).sort(), ['read-article', 'upgraded-plan']);
  const upgraded = events.find((e) => e.event_name === 'upgraded-plan');
  assert.deepEqual(upgraded.metadata, { plan: 'pro', seats: 5, annual: true });
  assert.match(upgraded.headers['user-agent'], /node\/\d+/);
  const s = tr.stats();
  assert.equal(s.delivered, 2);
  assert.equal(s.tracked, s.delivered + s.failed + s.dropped + s.deduplicated + s.queued + s.inFlight);
});

test('retries a 503 and delivers the event', async (t) => {
  const emu = await emulator(t);
  await emu.script([{ status: 503 }, { status: 503 }]);
  const tr = tracker(t, emu, { backoffBase: 0.01, backoffMax: 0.05 });
  tr.track('retried', { userId: 'u' });
  assert.equal(await tr.flush({ timeoutMs: 10000 }), true);
  await emu.waitEvents(1);
  const s = tr.stats();
  assert.equal(s.delivered, 1);
  assert.equal(s.retried, 2);
});

test('a permanent failure reaches onError on the JS thread before flush resolves', async (t) => {
  const emu = await emulator(t);
  await emu.script([{ status: 400, code: 'parameter_invalid', message: 'bad thing' }]);
  const reports = [];
  const tr = tracker(t, emu, { onError: (event, error) => reports.push([event, error]) });
  tr.track('refused', { userId: 'u', metadata: { plan: 'pro' } });
  assert.equal(await tr.flush({ timeoutMs: 10000 }), true);
  assert.equal(reports.length, 1);
  const [event, error] = reports[0];
  assert.deepEqual([event.event_name, event.user_id, event.metadata], ['refused', 'u', { plan: 'pro' }]);
  assert.ok(error instanceof DeliveryError);
  assert.equal(error.code, 'rejected');
  assert.equal(error.status, 400);
  assert.match(error.message, /bad thing/);
  assert.equal(tr.stats().failedRejected, 1);
});

test('an exception thrown by onError becomes a warning, not a crash', async (t) => {
  const emu = await emulator(t);
  await emu.script([{ status: 404 }]);
  const warned = deferred();
  const onWarning = (w) => w.name === 'TrackcoreWarning' && warned.resolve(w);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  // A 404 "User Not Found" is reported at once only under unknownContact 'report' (the default holds it).
  const tr = tracker(t, emu, { unknownContact: 'report', onError: () => { throw new Error('boom in callback'); } });
  tr.track('refused', { userId: 'u' });
  await tr.flush({ timeoutMs: 10000 });
  const w = await warned.promise;
  assert.match(w.message, /boom in callback/);
});

test('flush waits off the event loop and keeps its bound while the request is unanswered', async (t) => {
  const emu = await emulator(t);
  const tr = tracker(t, emu);
  await emu.hold();
  tr.track('held', { userId: 'u' });
  assert.ok(await emu.waitHeld(1), 'the request reached the emulator');
  const start = Date.now();
  assert.equal(await tr.flush({ timeoutMs: 200 }), false);
  const took = Date.now() - start;
  assert.ok(took >= 150 && took < 200 + SLACK_MS, `flush took ${took} ms`);
  // The loop stays free during a flush: this same thread opens the gate
  // while the flush is waiting, and the flush sees the answer.
  const flushing = tr.flush({ timeoutMs: 30000 });
  await emu.open();
  assert.equal(await flushing, true);
  assert.equal(tr.stats().delivered, 1);
});

test('shutdown keeps its bound, reports what it gave up, and closes the tracker', async (t) => {
  const emu = await emulator(t);
  const reports = [];
  const tr = tracker(t, emu, { onError: (event, error) => reports.push(error.code) });
  await emu.hold();
  tr.track('stuck', { userId: 'u' });
  assert.ok(await emu.waitHeld(1));
  const start = Date.now();
  // The last fifth of the bound (200 ms) is the report's time to reach the
  // callback: room for a loaded machine's scheduling, still a tight bound.
  assert.equal(await tr.shutdown({ timeoutMs: 1000 }), false);
  const took = Date.now() - start;
  assert.ok(took < 1000 + SLACK_MS, `shutdown took ${took} ms`);
  assert.deepEqual(reports, ['undelivered_at_shutdown'], 'reported before shutdown resolved');
  assert.equal(tr.stats().droppedShutdown, 1);
  assert.throws(() => tr.track('late', { userId: 'u' }), TrackerClosedError);
});

test('log lines reach the logger option; the token never appears in them', async (t) => {
  const emu = await emulator(t);
  await emu.script([{ status: 503 }, { status: 503 }, { status: 503 }]);
  const lines = [];
  const got = deferred();
  const tr = tracker(t, emu, {
    accessToken: TOKEN,
    backoffBase: 0.01,
    backoffMax: 0.02,
    logger: (level, message) => {
      lines.push([level, message]);
      if (level === 'warn' && /503/.test(message)) got.resolve();
    },
  });
  tr.track('flaky', { userId: 'u' });
  assert.equal(await tr.flush({ timeoutMs: 10000 }), true);
  await got.promise;
  assert.ok(lines.some(([level, m]) => level === 'warn' && /503/.test(m)), JSON.stringify(lines));
  assert.ok(lines.every(([, m]) => !m.includes(TOKEN)));
});

test('DEBUG=trackcore writes the core log lines to stderr', async (t) => {
  const script = `
    const { Tracker } = require(${JSON.stringify(PKG)});
    const t = new Tracker({ accessToken: 'tok_secret', baseUrl: 'http://127.0.0.1:9', backoffBase: 0.01 });
    t.track('e', { userId: 'u' });
    t.flush({ timeoutMs: 1000 }).then(() => t.shutdown({ timeoutMs: 0 }));`;
  const on = await runNode(script, { env: { DEBUG: 'express:*,trackcore' } });
  assert.equal(on.code, 0, on.stderr);
  assert.match(on.stderr, /trackcore warn delivery failing/);
  assert.ok(!on.stderr.includes('tok_secret'));
  const off = await runNode(script, { env: { DEBUG: '' } });
  assert.equal(off.code, 0);
  assert.equal(off.stderr, '');
});

test('a process that tracks and returns exits by itself, with every event delivered', async (t) => {
  const emu = await emulator(t);
  const script = `
    const { Tracker } = require(${JSON.stringify(PKG)});
    const t = new Tracker({ baseUrl: process.env.URL });
    for (let i = 0; i < 20; i++) t.track('natural-exit', { userId: 'u-' + i });`;
  const r = await runNode(script, { env: { URL: emu.url, INTERCOM_ACCESS_TOKEN: emu.token }, timeoutMs: 30000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.signal, null);
  assert.equal((await emu.waitEvents(20)).length, 20);
});

test('process.exit() right after tracking still delivers within the exit bound', async (t) => {
  const emu = await emulator(t);
  const script = `
    const { Tracker } = require(${JSON.stringify(PKG)});
    const t = new Tracker({ baseUrl: process.env.URL, exitTimeout: 10 });
    t.track('hard-exit', { userId: 'u' });
    process.exit(3);`;
  const r = await runNode(script, { env: { URL: emu.url, INTERCOM_ACCESS_TOKEN: emu.token } });
  assert.equal(r.code, 3, r.stderr);
  assert.equal((await emu.waitEvents(1)).length, 1);
});

test('an idle tracker never keeps the process alive, and the exit flush keeps its bound', async (t) => {
  const emu = await emulator(t);
  await emu.hold();
  const script = `
    const { Tracker } = require(${JSON.stringify(PKG)});
    const t = new Tracker({ baseUrl: process.env.URL, exitTimeout: 1, onError: (e, err) => console.log(err.code) });
    t.track('never-answered', { userId: 'u' });`;
  const start = Date.now();
  const r = await runNode(script, { env: { URL: emu.url, INTERCOM_ACCESS_TOKEN: emu.token } });
  const took = Date.now() - start;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'undelivered_at_shutdown');
  assert.ok(took < 1000 + 5000, `the process took ${took} ms to exit`);
  const idle = await runNode(`new (require(${JSON.stringify(PKG)}).Tracker)({ memory: true, flushAtExit: false });`);
  assert.equal(idle.code, 0, idle.stderr);
});

test('worker threads each deliver through their own tracker', async (t) => {
  const emu = await emulator(t);
  const { Worker } = require('node:worker_threads');
  const code = `
    const { workerData } = require('node:worker_threads');
    const { Tracker } = require(workerData.pkg);
    const t = new Tracker({ accessToken: workerData.token, baseUrl: workerData.url });
    t.track('from-worker', { userId: 'w-' + workerData.n });
    t.shutdown({ timeoutMs: 10000 });`;
  const exits = await Promise.all([0, 1, 2].map((n) => new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { pkg: PKG, url: emu.url, token: emu.token, n } });
    w.on('error', reject);
    w.on('exit', resolve);
  })));
  assert.deepEqual(exits, [0, 0, 0]);
  const users = (await emu.waitEvents(3)).map((e) => e.user_id).sort();
  assert.deepEqual(users, ['w-0', 'w-1', 'w-2']);
});

test('with spoolDir, what a shutdown leaves during an outage is delivered by the next tracker', async (t) => {
  const { mkdtempSync, rmSync } = require('node:fs');
  const { tmpdir } = require('node:os');
  const net = require('node:net');
  const dir = mkdtempSync(join(tmpdir(), 'trackcore-node-spool-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // A port nothing listens on: Intercom is down.
  const port = await new Promise((ok) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = srv.address().port;
      srv.close(() => ok(p));
    });
  });
  const down = new Tracker({ accessToken: TOKEN, baseUrl: `http://127.0.0.1:${port}`, spoolDir: dir, flushAtExit: false });
  for (let i = 0; i < 200; i++) down.track('spooled', { userId: `n-${i}` });
  assert.equal(await down.sync({ timeoutMs: 10000 }), true);
  assert.equal(await down.shutdown({ timeoutMs: 300 }), false);
  // Counted once the pipeline has stopped: a second shutdown waits for that.
  assert.equal(await down.shutdown({ timeoutMs: 30000 }), false);
  const left = down.stats();
  assert.deepEqual([left.tracked, left.persisted, left.dropped], [200, 200, 0]);

  const emu = await emulator(t);
  const tr = tracker(t, emu, { spoolDir: dir });
  assert.equal(await tr.flush({ timeoutMs: 30000 }), true);
  const s = tr.stats();
  assert.deepEqual([s.recovered, s.delivered, s.spooled, s.queued], [200, 200, 0, 0]);
  const events = await emu.waitEvents(200);
  assert.equal(new Set(events.map((e) => e.user_id)).size, 200);
});
