'use strict';
// Events of contacts Intercom does not know yet (404 "User Not Found"): the
// core's unknown_contact scenario once through the Node API, against the
// emulator run with --require-known-users (core/tests/contacts.rs and the
// Python suite cover every mode).

const test = require('node:test');
const assert = require('node:assert/strict');
const { Tracker } = require('..');
const { emulator } = require('./helpers');

test('unknownContact "create" makes each new contact once and delivers every event', async (t) => {
  const emu = await emulator(t, '--require-known-users');
  const errors = [];
  const tr = new Tracker({
    accessToken: emu.token,
    baseUrl: emu.url,
    unknownContact: 'create',
    unknownContactBackoff: 0.1,
    backoffBase: 0.05,
    backoffMax: 0.2,
    onError: (event, error) => errors.push(error.code),
  });
  t.after(() => tr.shutdown({ timeoutMs: 0 }));
  for (let i = 0; i < 200; i++) {
    tr.track('signed-up', { userId: `new-${i % 10}`, createdAt: 1_700_000_000 + i });
  }
  assert.equal(await tr.flush({ timeoutMs: 30000 }), true);
  const s = tr.stats();
  assert.deepEqual([s.delivered, s.failed, s.waitingForContact, s.queued, s.contactsCreated], [200, 0, 0, 0, 10]);
  assert.equal(s.tracked, s.delivered + s.failed + s.dropped + s.deduplicated + s.queued + s.inFlight);
  assert.deepEqual(errors, []);
  const contacts = (await emu.call('GET', '/__emulator/contacts')).body;
  assert.deepEqual(contacts.map((c) => c.external_id).sort(), Array.from({ length: 10 }, (_, k) => `new-${k}`).sort());
  assert.equal((await emu.events()).length, 200);
});

test('unknownContact is checked by name: a bad mode is a ConfigError naming it', () => {
  assert.throws(() => new Tracker({ memory: true, unknownContact: 'ignore' }), (e) => {
    assert.equal(e.code, 'invalid_config');
    assert.equal(e.field, 'config.unknownContact');
    assert.match(e.message, /report, wait, create/);
    return true;
  });
});
