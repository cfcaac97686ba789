// Track a few events through the Node binding (run by scripts/demo.sh).
// Reads TRACKCORE_BASE_URL and INTERCOM_ACCESS_TOKEN from the environment.
'use strict';
const { Tracker, Money, RichLink, TrackError } = require('trackcore');

async function main() {
  const tracker = new Tracker({
    baseUrl: process.env.TRACKCORE_BASE_URL,
    onError: (event, error) => console.log(`node: not delivered [${error.code}] ${event.event_name}: ${error.message}`),
  });
  tracker.track('upgraded-plan', {
    userId: 'node-user-7',
    metadata: { plan: 'business', seats: 30, annual: true, price: new Money(499900, 'gbp'), renewal_date: new Date('2027-03-01T00:00:00Z') },
  });
  tracker.track('read-article', {
    email: 'node-reader@example.com',
    metadata: { article: new RichLink('https://example.org/c.html', 'Tracking from Express') },
  });
  try {
    tracker.track('invited-teammate', { userId: 'node-user-7', createdAt: Date.now() });
  } catch (e) {
    if (!(e instanceof TrackError)) throw e;
    console.log(`node: rejected at track(): [${e.code}] ${e.message}`);
    console.log('      (deliberate: createdAt is Unix seconds and Date.now() is milliseconds, so track() throws at once and nothing is sent)');
  }
  const done = await tracker.flush({ timeoutMs: 10000 });
  const s = tracker.stats();
  console.log(`node: tracked=${s.tracked} delivered=${s.delivered} failed=${s.failed} dropped=${s.dropped} (flush complete: ${done})`);
  await tracker.shutdown({ timeoutMs: 5000 });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
