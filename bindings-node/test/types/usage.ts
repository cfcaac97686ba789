// Compiled (not run) by `tsc --strict` in the tests: the README's usage must
// type-check against index.d.ts, and misuse must not.
import { Tracker, Money, RichLink, TrackError, InvalidEventError, DeliveryError, options, ERROR_CODES, Stats, IntercomEvent } from 'trackcore';

async function main(): Promise<void> {
  const errors: Array<[IntercomEvent, DeliveryError]> = [];
  const tracker = new Tracker({
    accessToken: 'token',
    region: 'eu',
    queueCapacity: 1000,
    overflow: 'drop_oldest',
    requestTimeout: 2.5,
    allowedEventNames: ['upgraded-plan'],
    onError: (event, error) => errors.push([event, error]),
    logger: (level, message) => void `${level} ${message}`,
  });
  tracker.track('upgraded-plan', {
    userId: 42,
    createdAt: new Date(),
    metadata: {
      plan: 'pro',
      seats: 5,
      annual: true,
      price: new Money(34999, 'eur'),
      article: new RichLink('https://example.org', 'Docs'),
      renewal_date: new Date(),
      gone: null,
    },
  });
  try {
    tracker.track('', { email: 'a@b.c' });
  } catch (e) {
    if (e instanceof InvalidEventError) {
      const code: string = e.code;
      const field: string | undefined = e.field;
      void [code, field];
    } else if (e instanceof TrackError) {
      void e.status;
    }
  }
  const done: boolean = await tracker.flush({ timeoutMs: 5000 });
  const stats: Stats = tracker.stats();
  const n: number = stats.delivered + stats.inFlight;
  const paused: boolean = stats.authPaused;
  const events: IntercomEvent[] = await tracker.recorded();
  const names: string[] = options().map((o) => o.name);
  const codes: readonly string[] = ERROR_CODES;
  await tracker.shutdown();
  void [done, n, paused, events, names, codes];

  // @ts-expect-error metadata values cannot be arrays
  tracker.track('x', { userId: 'u', metadata: { list: [1, 2] } });
  // @ts-expect-error options are camelCase
  new Tracker({ queue_capacity: 5 });
  // @ts-expect-error durations are numbers of seconds
  new Tracker({ requestTimeout: '10s' });
}

void main;
