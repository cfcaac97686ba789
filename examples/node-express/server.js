'use strict';
// Start the app: `INTERCOM_ACCESS_TOKEN=… node server.js` (PORT, default 3000;
// TRACKCORE_BASE_URL points it at the emulator). Prints its URL on the first line.
const { Tracker } = require('trackcore');
const { createApp } = require('./app');

const tracker = new Tracker({
  baseUrl: process.env.TRACKCORE_BASE_URL || undefined, // unset: Intercom's US region
  onError: (event, error) => console.error(`not delivered [${error.code}] ${event.event_name}: ${error.message}`),
});
const server = createApp(tracker).listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`express example listening on http://127.0.0.1:${server.address().port}`);
});

// On SIGTERM stop taking requests, then deliver what is queued (bounded) and exit.
process.once('SIGTERM', () => {
  server.close();
  tracker.shutdown({ timeoutMs: 5000 }).then((done) => {
    console.log(`express example stopped (everything delivered: ${done})`);
  });
});
