// Type definitions for trackcore (hand-written; `tsc --strict` checks them in the tests).
// Every option, default, rule and error code comes from the Rust core: this
// file names them for TypeScript and documents what each call guarantees.

/** Where Intercom hosts your workspace. */
export type Region = 'us' | 'eu' | 'au';

/** What track() does when `queueCapacity` events are already waiting. */
export type Overflow = 'drop_newest' | 'drop_oldest' | 'block';

/** A log level of the core's lines. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** Anything with console-like methods (console, pino, winston, bunyan). */
export interface LoggerObject {
  error?(message: string): unknown;
  warn?(message: string): unknown;
  info?(message: string): unknown;
  debug?(message: string): unknown;
  trace?(message: string): unknown;
  log?(message: string): unknown;
}

/**
 * Options of a {@link Tracker}. Every core option is here in camelCase, set by
 * name through the core (defaults live only there: see {@link options}).
 * Durations are **seconds**, as in every trackcore binding; unknown names throw
 * a {@link ConfigError} naming them.
 */
export interface TrackerOptions {
  /** Intercom access token. Default: `$INTERCOM_ACCESS_TOKEN`. Never appears in errors or logs. */
  accessToken?: string;
  /** `us` (default), `eu` or `au`. */
  region?: Region;
  /** Overrides the region's host (the emulator, a proxy), e.g. `http://127.0.0.1:8089`. */
  baseUrl?: string;
  /** The `Intercom-Version` header. */
  apiVersion?: string;
  /** Events held waiting for delivery; the overflow policy applies beyond it. */
  queueCapacity?: number;
  /** `drop_newest` (default), `drop_oldest` or `block`. */
  overflow?: Overflow;
  /** Seconds track() may wait for room under `overflow: 'block'` (on the calling thread). */
  blockTimeout?: number;
  /** Concurrent HTTP requests (the core's sender threads). */
  maxInFlight?: number;
  /** Your app's Intercom rate limit per minute; pacing keeps under it. */
  rateLimitPerMinute?: number;
  /** `local` (this process paces itself) or `none`. */
  rateLimiter?: 'local' | 'none';
  /** Fleet mode: a `redis://` or `rediss://` URL (user and password allowed); every tracker of the app with it shares one budget. */
  sharedBudget?: string;
  /** Prefix of fleet mode's Redis keys (default `trackcore:`). */
  sharedBudgetPrefix?: string;
  /** Percent of the rate limit paced to locally while Redis is unreachable (default 10). */
  sharedBudgetFallbackPercent?: number;
  /** Seconds per HTTP request. */
  requestTimeout?: number;
  /** Retries per event after its first attempt. */
  maxRetries?: number;
  /** Seconds after an event's first attempt when no retry starts. */
  retryDeadline?: number;
  /** First retry backoff in seconds (doubles per retry). */
  backoffBase?: number;
  /** Largest retry backoff in seconds. */
  backoffMax?: number;
  /** Seconds between probes while delivery is paused by a 401/403. */
  authProbeInterval?: number;
  /** Cap on distinct event names (Intercom's is 120). */
  maxEventNames?: number;
  /** If set, only these event names are accepted. */
  allowedEventNames?: string[] | null;
  /** Drop copies of (identity, name, createdAt) before sending. */
  dedupe?: boolean;
  /** Directory of the disk spool that keeps events until delivered, across crashes and restarts. Off when unset. */
  spoolDir?: string | null;
  /** Size cap of the spool in bytes; past it new events are dropped (counted, reported). Default 1 GiB. */
  spoolMaxBytes?: number;
  /** Seconds between syncs of the spool to disk (0: every write); what a power loss can lose. Default 0.1. */
  spoolSyncInterval?: number;
  /** An event whose contact Intercom does not know (404): `report`, `wait` (default: hold and retry) or `create` (the contact). */
  unknownContact?: 'report' | 'wait' | 'create';
  /** Seconds an event of an unknown contact is held before it is reported (default 900). */
  unknownContactWait?: number;
  /** Seconds before a held contact is tried again (doubles per try; default 10). */
  unknownContactBackoff?: number;
  /** Record events instead of sending them (for tests; see {@link Tracker.recorded}). */
  memory?: boolean;
  /** Seconds a collected tracker waits for delivery; the default flush/shutdown/exit timeout. */
  dropTimeout?: number;
  /** Appended to the User-Agent. Default: `node/<version>`. */
  userAgentSuffix?: string;

  /**
   * Called on the JavaScript thread for every event that could not be
   * delivered (and once per pause on a refused token), with the event as it
   * would have been posted and a {@link DeliveryError}. An exception it throws
   * becomes a process warning.
   */
  onError?: ((event: IntercomEvent, error: DeliveryError) => void) | null;
  /**
   * Where the core's log lines go (one line per change in delivery's state).
   * A function `(level, message)`, or an object with level methods. Default:
   * silent unless `DEBUG` names `trackcore`, then stderr.
   */
  logger?: ((level: LogLevel, message: string) => void) | LoggerObject | false | null;
  /** Shut down (flushing for `exitTimeout`) when the process is about to exit. Default: true. */
  flushAtExit?: boolean;
  /** Seconds the exit flush may take. Default: `dropTimeout`. */
  exitTimeout?: number;
}

/** A metadata value. `null`/`undefined` are omitted; Dates only under keys ending in `_date`. */
export type MetadataValue =
  | string
  | number
  | boolean
  | bigint
  | Date
  | Money
  | RichLink
  | { amount: number; currency: string }
  | { url: string; value: string }
  | null
  | undefined;

/** The identity and data of one event. One of `userId`, `id` or `email` is required. */
export interface TrackOptions {
  /** Your id for the user; a whole number or bigint is sent as a string. */
  userId?: string | number | bigint | null;
  /** Intercom's contact id (the only way to attribute an event to a lead). */
  id?: string | null;
  /** The contact's email. */
  email?: string | null;
  /** Whole Unix seconds (UTC) or a Date. Default: now. */
  createdAt?: number | bigint | Date | null;
  /** At most 10 keys, sent in this order. */
  metadata?: Record<string, MetadataValue> | null;
}

/** An event as posted to Intercom's `POST /events`. */
export interface IntercomEvent {
  event_name: string;
  created_at: number;
  user_id?: string;
  id?: string;
  email?: string;
  metadata?: Record<string, unknown>;
}

/** The counters of a tracker; `tracked + recovered == delivered + failed + dropped + deduplicated + persisted + queued + spooled + inFlight`. */
export interface Stats {
  tracked: number;
  recovered: number;
  delivered: number;
  retried: number;
  failed: number;
  failedRejected: number;
  failedRetriesExhausted: number;
  dropped: number;
  droppedQueueFull: number;
  droppedOldest: number;
  droppedShutdown: number;
  droppedSpool: number;
  deduplicated: number;
  persisted: number;
  queued: number;
  spooled: number;
  spoolBytes: number;
  spoolCorrupt: number;
  inFlight: number;
  /** Of `queued`: events held because Intercom does not know their contact yet. */
  waitingForContact: number;
  blocked: number;
  rateLimited: number;
  rateLimitWaitMs: number;
  authPaused: boolean;
  reportsDropped: number;
  /** Fleet mode: times delivery found no leased permit and waited for the shared budget. */
  fleetPermitWaits: number;
  /** Fleet mode: Redis commands or connections that failed. */
  redisErrors: number;
  /** Fleet mode: time paced locally while Redis was unreachable, in milliseconds. */
  fleetFallbackMs: number;
  /** `unknownContact: 'create'`: contacts this tracker created in the workspace (a 409, made elsewhere meanwhile, is not counted). */
  contactsCreated: number;
}

/** A bound on a wait, in milliseconds. Default: the tracker's `dropTimeout`. */
export interface WaitOptions {
  timeoutMs?: number;
}

/**
 * Sends events to Intercom's Data Events API in the background.
 *
 * The delivery pipeline runs on the core's own threads: nothing it holds
 * keeps the event loop alive, and when the process is about to exit the
 * tracker shuts down within `exitTimeout` (unless `flushAtExit: false`).
 * Create one per process (per worker thread); a tracker cannot be passed
 * to another thread.
 */
export class Tracker {
  /** @throws {ConfigError} for an unknown or invalid option or a missing token. */
  constructor(options?: TrackerOptions);
  /**
   * Validate one event against Intercom's rules and queue it for delivery.
   * Synchronous and never waits on the network (under `overflow: 'block'` it
   * may wait up to `blockTimeout` for room).
   * @throws {InvalidEventError} invalid input (code and field say which rule).
   * @throws {InvalidTypeError} a value of a type Intercom cannot take.
   * @throws {TrackerClosedError} after {@link Tracker.shutdown}.
   */
  track(eventName: string, options?: TrackOptions): void;
  /**
   * Wait, off the event loop, until every event tracked before the call is
   * settled and its `onError` call has run, or `timeoutMs` passes.
   * Resolves true if all settled. Never rejects.
   */
  flush(options?: WaitOptions): Promise<boolean>;
  /**
   * Flush for at most `timeoutMs`, then stop the background threads; what is
   * left is reported as `undelivered_at_shutdown`. No `onError` call runs after
   * it resolves; later `track()` calls throw. Resolves true if nothing was
   * given up. Idempotent.
   */
  shutdown(options?: WaitOptions): Promise<boolean>;
  /**
   * Wait, off the event loop, until every event tracked before the call is
   * written to the spool (`spoolDir`) and synced to disk. Resolves true once
   * it is (at once without a spool). Never rejects.
   */
  sync(options?: WaitOptions): Promise<boolean>;
  /** A snapshot of the counters. Synchronous and cheap. */
  stats(): Stats;
  /**
   * In memory mode, the events recorded so far (oldest first), once events
   * tracked before the call have passed through the pipeline (de-duplication
   * included). Waits off the event loop. Empty when not in memory mode.
   */
  recorded(): Promise<IntercomEvent[]>;
  /** In memory mode, forget the recorded events. */
  clearRecorded(): void;
  /** Whether this tracker records events instead of sending them. */
  readonly memory: boolean;
  /** Shuts down (bounded by `dropTimeout`), for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** A monetary amount: whole cents and an ISO 4217 code. Sent as `{amount, currency}`. */
export class Money {
  constructor(amountCents: number | bigint, currency: string);
  readonly amount: number | bigint;
  readonly currency: string;
}

/** A rich link: an http(s) URL and the text shown for it. Sent as `{url, value}`. */
export class RichLink {
  constructor(url: string, value: string);
  readonly url: string;
  readonly value: string;
}

/** Every error trackcore throws or reports. */
export class TrackError extends Error {
  /** The core's stable code (one of {@link ERROR_CODES}). */
  readonly code: string;
  /** The field the error is about (`event_name`, `metadata.plan`, `config.region`), if any. */
  readonly field: string | undefined;
  /** Intercom's HTTP status, for delivery errors that have one. */
  readonly status?: number;
}
/** Invalid input to track(): a value breaks one of Intercom's rules. */
export class InvalidEventError extends TrackError {}
/** A value of a type Intercom cannot take (arrays, nested objects, Maps, ...). */
export class InvalidTypeError extends TrackError {}
/** track() after shutdown(). */
export class TrackerClosedError extends TrackError {}
/** An unknown or invalid option, or no access token. */
export class ConfigError extends TrackError {}
/** Passed to `onError`: an event that could not be delivered, or a notice about delivery. */
export class DeliveryError extends TrackError {}

/** One documented option of the core. */
export interface OptionDoc {
  /** camelCase name, as in {@link TrackerOptions}. */
  name: string;
  /** The snake_case name every binding shares. */
  coreName: string;
  /** `str`, `int`, `float` (seconds), `bool` or `list`. */
  kind: string;
  /** The core's default, as text. */
  default: string;
  /** One line of documentation. */
  doc: string;
}

/** The core's options in its documented order, with their defaults. */
export function options(): OptionDoc[];
/** Every code a {@link TrackError} can carry. */
export const ERROR_CODES: readonly string[];
/** The version of the Rust core inside this package. */
export const CORE_VERSION: string;
