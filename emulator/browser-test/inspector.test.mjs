// The emulator's inspector page in a real browser: headless Debian chromium,
// driven by playwright-core (no bundled browser download). Events are tracked
// through the Node binding (bindings-node) against a trackcore-emulator
// process, and the test watches them appear in the page's DOM without a reload.
//
// Every wait is on a DOM condition or an emulator wait endpoint, never a sleep.
// Environment: TRACKCORE_EMULATOR (the binary), CHROMIUM (the browser),
// SCREENSHOT (where to write the screenshot; run.sh passes one).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdirSync } from 'node:fs';
import readline from 'node:readline';
import http from 'node:http';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const require = createRequire(import.meta.url);
const { Tracker } = require(resolve(REPO, 'bindings-node'));

const TOKEN = 'browser-test-token';
const WAIT = 20_000;

let emu;      // { proc, url }
let browser;

async function startEmulator(...args) {
  const bin = process.env.TRACKCORE_EMULATOR || resolve(REPO, 'target', 'release', 'trackcore-emulator');
  const proc = spawn(bin, ['--port', '0', '--token', TOKEN, '--exit-on-stdin-close', ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const rl = readline.createInterface({ input: proc.stdout });
  const line = await new Promise((ok, fail) => {
    rl.once('line', ok);
    proc.once('exit', (code) => fail(new Error(`emulator exited with ${code} before it listened`)));
  });
  const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
  assert.ok(m, `first line names the address: ${line}`);
  // Keep reading: the request log must never fill the pipe (it would not block
  // the emulator anyway, but the lines are useful when a test fails).
  const log = [];
  rl.on('line', (l) => log.push(l));
  return { proc, url: m[1], log };
}

async function control(path, init) {
  const res = await fetch(emu.url + path, init);
  assert.ok(res.ok, `${path}: HTTP ${res.status}`);
  return res.json();
}

async function waitStored(n) {
  const res = await fetch(`${emu.url}/__emulator/events/wait?count=${n}&timeout_ms=${WAIT}`);
  assert.equal(res.status, 200, `${n} events stored within ${WAIT} ms`);
}

async function rawEvent(body, token = TOKEN) {
  const res = await fetch(`${emu.url}/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return res.status;
}

// Rows on screen as plain data.
async function rows(page) {
  return page.$$eval('#rows tr.req', (trs) => trs.map((tr) => ({
    seq: Number(tr.dataset.seq),
    status: tr.dataset.status,
    outcome: tr.dataset.outcome,
    event: tr.querySelector('.event').textContent,
    contact: tr.querySelector('.contact').textContent,
    code: tr.querySelector('.code').textContent,
  })));
}

before(async () => {
  // A cap of 3 event names, so the third new name is refused by the emulator
  // (the client's own cap is Intercom's 120: it sends it, and learns).
  emu = await startEmulator('--max-event-names', '3');
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    // CI runs as root, where chromium's sandbox cannot start.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
});

after(async () => {
  await browser?.close();
  emu?.proc.kill();
});

test('tracked events appear live, refusals show their code, filters narrow the list', async () => {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e));
  await page.goto(emu.url + '/');
  await page.waitForSelector('#live.on', { timeout: WAIT });
  assert.equal(await page.locator('#rows tr.req').count(), 0);
  // Marks this document: if the page reloaded, the mark would be gone.
  await page.evaluate(() => { window.__sameDocument = 'yes'; });

  const errors = [];
  const tracker = new Tracker({
    accessToken: TOKEN,
    baseUrl: emu.url,
    onError: (event, error) => errors.push({ event, error }),
  });
  try {
    // 1. An event tracked through the binding appears without a reload.
    tracker.track('signed-up', { userId: 'u-ada', metadata: { plan: 'pro', seats: 5 } });
    await waitStored(1);
    const first = page.locator('#rows tr.req[data-outcome="stored"]', { hasText: 'signed-up' });
    await first.waitFor({ timeout: WAIT });
    assert.equal(await first.locator('.contact').textContent(), 'u-ada');
    assert.equal(await first.getAttribute('data-status'), '202');

    tracker.track('viewed-pricing', { userId: 'u-bob', metadata: { source: 'ad' } });
    tracker.track('signed-up', { userId: 'u-bob' });
    await waitStored(3);
    await page.waitForFunction(() => document.querySelectorAll('#rows tr.req').length === 3, null, { timeout: WAIT });

    // 2. A refusal: with signed-up and viewed-pricing in use, a third name still
    //    fits the emulator's cap of 3; the fourth is refused.
    tracker.track('upgraded-plan', { userId: 'u-ada', metadata: { plan: 'team' } });
    await waitStored(4);
    tracker.track('cancelled-subscription', { userId: 'u-bob' });
    const refused = page.locator('#rows tr.req[data-status="422"]');
    await refused.waitFor({ timeout: WAIT });
    assert.equal(await refused.locator('.code').textContent(), 'event_name_limit_reached');
    assert.equal(await refused.locator('.event').textContent(), 'cancelled-subscription');
    assert.equal(await tracker.flush({ timeoutMs: WAIT }), true);
    // The binding reported it too (a permanent refusal is not retried).
    const seen = JSON.stringify(errors.map(({ event, error }) => ({ event, code: error.code, message: error.message })));
    assert.equal(errors.length, 1, seen);
    assert.equal(errors[0].error.code, 'rejected', seen);
    assert.equal(errors[0].event.event_name, 'cancelled-subscription', seen);
    assert.match(errors[0].error.message, /422|event_name_limit_reached/, seen);
    console.log(`# the binding's onError: ${seen}`);

    // Selecting it shows why Intercom refused it, and the body that caused it.
    await refused.click();
    await page.locator('#detail-error .code', { hasText: 'event_name_limit_reached' }).waitFor({ timeout: WAIT });
    const raw = await page.locator('#detail-raw').textContent();
    assert.match(raw, /"event_name": "cancelled-subscription"/);

    // A few requests sent by hand, as a developer debugging would: a wrong
    // token, an invalid body, and metadata past Intercom's 10 keys.
    assert.equal(await rawEvent({ event_name: 'signed-up', created_at: 1700000000, user_id: 'u-cy' }, 'a-stale-token'), 401);
    assert.equal(await rawEvent('{"event_name":"viewed-pricing","created_at":"yesterday","user_id":"u-cy"}'), 400);
    const metadata = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`key_${i + 1}`, i + 1]));
    assert.equal(await rawEvent({ event_name: 'viewed-pricing', created_at: 1700000001, user_id: 'u-ada', metadata }), 202);
    await page.waitForFunction(() => document.querySelectorAll('#rows tr.req').length === 8, null, { timeout: WAIT });
    const unauthorized = page.locator('#rows tr.req[data-status="401"] .code');
    assert.equal(await unauthorized.textContent(), 'unauthorized');

    // 3. Filters narrow the list (server-side, the DOM shows only matches).
    await page.fill('#f-contact', 'u-bob');
    await page.waitForFunction(() => {
      const cs = [...document.querySelectorAll('#rows tr.req .contact')].map((c) => c.textContent);
      return cs.length === 3 && cs.every((c) => c === 'u-bob');
    }, null, { timeout: WAIT });
    await page.selectOption('#f-status', 'refused');
    await page.waitForFunction(() => document.querySelectorAll('#rows tr.req').length === 1, null, { timeout: WAIT });
    assert.deepEqual((await rows(page)).map((r) => r.code), ['event_name_limit_reached']);
    await page.click('#clear-filters');
    await page.fill('#f-event', 'viewed');
    await page.waitForFunction(() => {
      const es = [...document.querySelectorAll('#rows tr.req .event')].map((c) => c.textContent);
      return es.length === 3 && es.every((e) => e === 'viewed-pricing');
    }, null, { timeout: WAIT });
    // A live arrival that matches the filter shows up; one that does not, does not.
    assert.equal(await rawEvent({ event_name: 'signed-up', created_at: 1700000002, user_id: 'u-dee' }), 202);
    assert.equal(await rawEvent({ event_name: 'viewed-pricing', created_at: 1700000003, user_id: 'u-dee' }), 202);
    await page.waitForFunction(() => document.querySelectorAll('#rows tr.req').length === 4, null, { timeout: WAIT });
    assert.ok((await rows(page)).every((r) => r.event === 'viewed-pricing'));
    await page.click('#clear-filters');
    await page.waitForFunction(() => document.querySelectorAll('#rows tr.req').length === 10, null, { timeout: WAIT });

    // The gauges: 3 of 3 names in use; the window's allowance at 10,000/min;
    // the busiest window so far (monotonic, unlike the current window's count,
    // which starts again at 0 every 10 s).
    await page.waitForFunction(() => document.getElementById('n-used').textContent === '3'
      && document.getElementById('n-cap').textContent === '3'
      && document.getElementById('w-limit').textContent === '1667', null, { timeout: WAIT });
    const stats = await control('/__emulator/stats');
    assert.ok(stats.max_requests_in_window >= 1);
    await page.waitForFunction((n) => Number(document.getElementById('w-max').textContent) >= n,
      stats.max_requests_in_window, { timeout: WAIT });

    // The event as Intercom stores it: the 11th metadata key is marked ignored,
    // and the contact's timeline lists its stored events.
    await page.locator('#rows tr.req', { hasText: 'viewed-pricing' }).filter({ hasText: 'u-ada' }).click();
    await page.locator('#detail-body tr.ignored', { hasText: 'key_11' }).waitFor({ timeout: WAIT });
    assert.equal(await page.locator('#detail-body tr.ignored').count(), 1);
    await page.waitForFunction(() => document.querySelectorAll('#timeline li').length === 3, null, { timeout: WAIT });

    assert.equal(await page.evaluate(() => window.__sameDocument), 'yes', 'no reload happened');
    assert.deepEqual(pageErrors, []);

    const shot = process.env.SCREENSHOT || resolve(REPO, 'target', 'emulator-inspector.png');
    mkdirSync(dirname(shot), { recursive: true });
    await page.screenshot({ path: shot, fullPage: false });

    // The reset button empties the page (after the confirmation dialog).
    page.once('dialog', (d) => d.accept());
    await page.click('#reset');
    await page.waitForFunction(() => document.querySelectorAll('#rows tr.req').length === 0, null, { timeout: WAIT });
    assert.equal((await control('/__emulator/stats')).stored, 0);
  } finally {
    await tracker.shutdown({ timeoutMs: 5000 });
    await context.close();
  }
});

test('100,000 stored events: the page shows one page of rows and pages through them', async () => {
  await control('/__emulator/reset', { method: 'POST' });
  await control('/__emulator/config', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ rate_limit_per_minute: 0, max_event_names: 0 }),
  });
  // 100,000 events over 8 keep-alive connections (node:http: fetch's per-request
  // overhead would make this the slowest part of the suite).
  const N = 100_000;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const { hostname, port } = new URL(emu.url);
  const post = (i) => new Promise((ok, fail) => {
    const body = `{"event_name":"load-${i % 50}","created_at":${1700000000 + i},"user_id":"u-${i % 1000}"}`;
    const req = http.request({ agent, hostname, port, path: '/events', method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'content-length': body.length } },
    (res) => { res.resume(); res.on('end', () => ok(res.statusCode)); });
    req.on('error', fail);
    req.end(body);
  });
  let next = 0;
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < N) {
      const status = await post(next++);
      assert.equal(status, 202);
    }
  }));
  agent.destroy();
  await waitStored(N);
  const fillMs = Date.now() - t0;

  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  try {
    const t1 = Date.now();
    await page.goto(emu.url + '/');
    await page.waitForFunction(() => document.querySelectorAll('#rows tr.req').length === 100, null, { timeout: WAIT });
    const firstPageMs = Date.now() - t1;
    assert.match(await page.locator('#page-info').textContent(), /100 shown of 100000 matching/);

    // Older pages, then a filter over all 100,000.
    const newest = (await rows(page))[0].seq;
    await page.click('#older');
    await page.waitForFunction((s) => Number(document.querySelector('#rows tr.req').dataset.seq) === s - 100,
      newest, { timeout: WAIT });
    assert.equal(await page.locator('#rows tr.req').count(), 100);
    const t2 = Date.now();
    await page.fill('#f-contact', 'u-7'); // u-7, u-70..79, u-700..799: 111 contacts × 100 events
    await page.waitForFunction(() => /of 11100 matching/.test(document.getElementById('page-info').textContent),
      null, { timeout: WAIT });
    const filterMs = Date.now() - t2;
    assert.equal(await page.locator('#rows tr.req').count(), 100, 'never more than a page in the DOM');
    console.log(`# 100,000 events: stored in ${fillMs} ms; first page rendered in ${firstPageMs} ms; ` +
                `contact filter over all of them in ${filterMs} ms (includes 150 ms input debounce)`);
  } finally {
    await context.close();
  }
});
