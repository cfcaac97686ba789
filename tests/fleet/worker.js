'use strict';
// One Node tracking process of the fleet-mode run (tests/fleet/mixed.py).
// Same protocol as core/examples/fleet_worker.rs: environment FLEET_*, prints
// `ready`, starts on a line from stdin, prints its stats as one JSON line.
const path = require('path');
const readline = require('readline');
const { Tracker } = require(path.join(__dirname, '..', '..', 'bindings-node'));

const env = process.env;
const options = {
  accessToken: env.FLEET_TOKEN,
  baseUrl: env.FLEET_EMULATOR,
  rateLimitPerMinute: Number(env.FLEET_RATE),
  maxInFlight: 16,
};
if (env.FLEET_REDIS) {
  options.sharedBudget = env.FLEET_REDIS;
  options.sharedBudgetPrefix = env.FLEET_PREFIX;
}
const tracker = new Tracker(options);
process.stdout.write('ready\n');
const rl = readline.createInterface({ input: process.stdin });
rl.once('line', async () => {
  rl.close();
  const who = env.FLEET_NAME;
  for (let i = 0; i < Number(env.FLEET_EVENTS); i++) {
    tracker.track('fleet-run', { userId: `${who}-${i}`, metadata: { i } });
  }
  const flushed = await tracker.flush({ timeoutMs: 120000 });
  const stats = tracker.stats();
  process.stdout.write(JSON.stringify({ flushed, ...stats, authPaused: stats.authPaused ? 1 : 0 }) + '\n');
  await tracker.shutdown({ timeoutMs: 1000 });
});
