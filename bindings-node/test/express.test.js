'use strict';
// examples/node-express against the emulator: the route tracks, bad input is
// a 400 naming the field, and SIGTERM delivers what is queued before exit.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { join } = require('node:path');
const readline = require('node:readline');
const { emulator, REPO } = require('./helpers');

const EXAMPLE = join(REPO, 'examples', 'node-express');

test('the Express example tracks from its route and delivers before it exits', async (t) => {
  const emu = await emulator(t);
  const app = spawn(process.execPath, ['server.js'], {
    cwd: EXAMPLE,
    env: { ...process.env, PORT: '0', TRACKCORE_BASE_URL: emu.url, INTERCOM_ACCESS_TOKEN: emu.token },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => app.exitCode === null && app.kill('SIGKILL'));
  const lines = readline.createInterface({ input: app.stdout });
  const it = lines[Symbol.asyncIterator]();
  const first = (await it.next()).value;
  const url = first.match(/listening on (http:\/\/\S+)/)[1];

  const post = (body) => fetch(`${url}/upgrade`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const ok = await post({ userId: 'u-123', plan: 'pro', seats: 5 });
  assert.equal(ok.status, 202);
  const bad = await post({ plan: 'pro' });
  assert.equal(bad.status, 400);
  assert.deepEqual(await bad.json().then((b) => [b.error, b.field]), ['missing_identity', 'user_id']);

  const [event] = await emu.waitEvents(1);
  assert.equal(event.event_name, 'upgraded-plan');
  assert.deepEqual(event.metadata, { plan: 'pro', seats: 5, annual: false });

  const exited = new Promise((resolve) => app.once('exit', (code) => resolve(code)));
  app.kill('SIGTERM');
  assert.match((await it.next()).value, /stopped \(everything delivered: true\)/);
  assert.equal(await exited, 0);
});
