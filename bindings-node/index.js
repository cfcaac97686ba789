'use strict';
// trackcore for Node.js: the public API over the native core (see index.d.ts
// for the documented surface). This file holds Node idioms only — options
// object, error classes, Promises, process exit — never a rule or a default:
// those come from the Rust core through the native module.

const { loadNative } = require('./native.js');

const native = loadNative();

/** Every code a TrackError can carry (the core's list). */
const ERROR_CODES = Object.freeze(native.errorCodes());
/** The version of the Rust core inside this package. */
const CORE_VERSION = native.coreVersion();

class TrackError extends Error {
  constructor(message, code, field, status) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.field = field;
    if (status !== undefined) this.status = status;
  }
}
class InvalidEventError extends TrackError {}
class InvalidTypeError extends TrackError {}
class TrackerClosedError extends TrackError {}
class ConfigError extends TrackError {}
class DeliveryError extends TrackError {}

const KINDS = {
  invalid_event: InvalidEventError,
  invalid_type: InvalidTypeError,
  closed: TrackerClosedError,
  config: ConfigError,
  delivery: DeliveryError,
};

function toError(f, caller) {
  const Cls = KINDS[f.kind] || TrackError;
  const err = new Cls(f.message, f.code, f.field ?? undefined, f.status ?? undefined);
  if (caller) Error.captureStackTrace(err, caller);
  return err;
}

function configError(option, reason) {
  return new ConfigError(`config.${option}: ${reason}`, 'invalid_config', `config.${option}`);
}

/** A monetary amount: whole cents and an ISO 4217 code, sent as {amount, currency}. */
class Money {
  constructor(amountCents, currency) {
    this.amount = amountCents;
    this.currency = currency;
    Object.freeze(this);
  }
}

/** A rich link: an http(s) URL and the text shown for it, sent as {url, value}. */
class RichLink {
  constructor(url, value) {
    this.url = url;
    this.value = value;
    Object.freeze(this);
  }
}

// ---- logging: the core's lines, to the `logger` option or DEBUG=trackcore ----

function debugEnabled(name, env = process.env.DEBUG) {
  if (!env) return false;
  let on = false;
  for (const raw of env.split(/[\s,]+/)) {
    if (!raw) continue;
    const neg = raw[0] === '-';
    const pat = neg ? raw.slice(1) : raw;
    const re = new RegExp('^' + pat.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*?') + '$');
    if (re.test(name)) on = !neg;
  }
  return on;
}

function warn(what, err) {
  process.emitWarning(`trackcore: ${what} threw: ${err && err.stack ? err.stack : err}`, 'TrackcoreWarning');
}

function logSink(logger) {
  if (logger === undefined) {
    if (!debugEnabled('trackcore')) return undefined;
    return (level, message) => process.stderr.write(`trackcore ${level} ${message}\n`);
  }
  if (logger === null || logger === false) return undefined;
  let write;
  if (typeof logger === 'function') {
    write = (level, message) => logger(level, message);
  } else if (typeof logger === 'object') {
    write = (level, message) => {
      const f = typeof logger[level] === 'function' ? logger[level] : logger.log;
      if (typeof f === 'function') f.call(logger, `trackcore: ${message}`);
    };
  } else {
    throw configError('logger', `must be a function (level, message), an object with debug/info/warn/error methods, or false; got ${typeof logger}`);
  }
  return (level, message) => {
    try {
      write(level, message);
    } catch (e) {
      warn('the logger', e);
    }
  };
}

// ---- process exit: flush on beforeExit, bounded shutdown on exit ----

const live = new Set();
let exitHooked = false;

function hookExit() {
  if (exitHooked) return;
  exitHooked = true;
  // Listeners keep nothing alive. beforeExit fires when the loop has emptied:
  // the shutdowns started here are the loop's last work, and the event fires
  // once more after them with nothing left to do.
  process.on('beforeExit', () => {
    for (const t of [...live]) t._exit(false);
  });
  // process.exit() or the last beforeExit: nothing asynchronous runs any
  // more, so what is still open shuts down here, within its bound.
  process.on('exit', () => {
    for (const t of [...live]) t._exit(true);
  });
}

const TRACK_KEYS = new Set(['userId', 'id', 'email', 'createdAt', 'metadata']);
const BINDING_OPTIONS = new Set(['onError', 'logger', 'flushAtExit', 'exitTimeout']);
const EMPTY = Object.freeze({});

class Tracker {
  #n;
  #onError;
  #barriers = [];
  #closing = false;
  #flushAtExit;
  #exitTimeoutMs;
  #memory;

  /**
   * @param {object} [options] core options in camelCase (see `options()`), plus
   *   onError, logger, flushAtExit and exitTimeout (seconds).
   */
  constructor(options = {}) {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw configError('options', `must be an object, got ${options === null ? 'null' : typeof options}`);
    }
    const { onError, logger, flushAtExit = true, exitTimeout } = options;
    const core = {};
    for (const k of Object.keys(options)) {
      if (!BINDING_OPTIONS.has(k)) core[k] = options[k];
    }
    if (core.userAgentSuffix === undefined) core.userAgentSuffix = `node/${process.versions.node}`;
    if (onError !== undefined && onError !== null && typeof onError !== 'function') {
      throw configError('onError', `must be a function (event, error), got ${typeof onError}`);
    }
    if (typeof flushAtExit !== 'boolean') {
      throw configError('flushAtExit', `expected bool, got ${typeof flushAtExit}`);
    }
    if (exitTimeout !== undefined && !(typeof exitTimeout === 'number' && exitTimeout >= 0 && exitTimeout <= 3600)) {
      throw configError('exitTimeout', `${exitTimeout} is not a duration in seconds (0 to 3600)`);
    }
    const sink = logSink(logger);
    this.#onError = onError || undefined;
    // The native side holds this callback strongly: reach the tracker through
    // a WeakRef, so the tracker can still be collected once it is shut down.
    const self = new WeakRef(this);
    const onReport = this.#onError ? (...report) => self.deref()?.#report(...report) : undefined;
    const made = native.create(core, onReport, sink);
    if (!(made instanceof native.NativeTracker)) throw toError(made, Tracker);
    this.#n = made;
    this.#memory = made.option('memory') === 'true';
    this.#flushAtExit = flushAtExit;
    const dropTimeout = Number(made.option('drop_timeout'));
    this.#exitTimeoutMs = 1000 * (exitTimeout === undefined ? dropTimeout : exitTimeout);
    live.add(this);
    hookExit();
  }

  #report(kind, body, code, message, field, status) {
    if (kind === 1) {
      const done = this.#barriers.shift();
      if (done) done();
      return;
    }
    let event;
    try {
      event = JSON.parse(body);
    } catch {
      event = body;
    }
    const err = new DeliveryError(message, code, field ?? undefined, status ?? undefined);
    try {
      this.#onError(event, err);
    } catch (e) {
      warn('onError', e);
    }
  }

  /** Resolves once every onError call already queued for this tracker has run. */
  #barrier() {
    if (!this.#n.barrier()) return Promise.resolve();
    return new Promise((resolve) => {
      // The report channel is weak (it never keeps the process alive); hold
      // the loop open for the moment the barrier takes to come through.
      const keep = setInterval(() => {}, 1 << 30);
      this.#barriers.push(() => {
        clearInterval(keep);
        resolve();
      });
    });
  }

  /**
   * Validate one event against Intercom's rules and queue it for delivery.
   * Throws a TrackError subclass for invalid input, TrackerClosedError after
   * shutdown. Never waits on the network.
   */
  track(eventName, opts) {
    let o = opts;
    if (o === undefined || o === null) {
      o = EMPTY;
    } else if (typeof o !== 'object' || Array.isArray(o)) {
      throw toError({ kind: 'invalid_type', code: 'unsupported_type', field: 'options', message: `options: must be an object like {userId, metadata}, got ${Array.isArray(o) ? 'an array' : typeof o}` }, this.track);
    } else {
      for (const k in o) {
        if (!TRACK_KEYS.has(k)) {
          throw toError({ kind: 'invalid_type', code: 'unsupported_type', field: k, message: `${k}: is not a track() option; use userId, id, email, createdAt or metadata` }, this.track);
        }
      }
    }
    const f = this.#n.track(eventName, o.userId, o.id, o.email, o.createdAt, o.metadata);
    if (f !== null && f !== undefined) throw toError(f, this.track);
  }

  /**
   * Wait (off the event loop) until every event tracked before the call is
   * settled and its onError call has run, or `timeoutMs` passes (default:
   * the core's dropTimeout). Resolves true if all settled.
   */
  async flush({ timeoutMs } = {}) {
    const done = await this.#n.flush(ms(timeoutMs, 'timeoutMs'));
    await this.#barrier();
    return done;
  }

  /**
   * Wait (off the event loop) until every event tracked before the call is
   * written to the spool (`spoolDir`) and synced to disk, or `timeoutMs`
   * passes. Resolves true once it is (at once without a spool).
   */
  async sync({ timeoutMs } = {}) {
    return this.#n.sync(ms(timeoutMs, 'timeoutMs'));
  }

  /**
   * Flush for at most `timeoutMs`, then stop. Later track() calls throw
   * TrackerClosedError; no onError call runs after the promise resolves.
   * Resolves true if nothing had to be given up. Idempotent.
   */
  async shutdown({ timeoutMs } = {}) {
    this.#closing = true;
    live.delete(this);
    const done = await this.#n.shutdown(ms(timeoutMs, 'timeoutMs'));
    await this.#barrier();
    return done;
  }

  /** A snapshot of the counters (camelCase). Never blocks. */
  stats() {
    return this.#n.stats();
  }

  /** In memory mode, the events recorded so far (oldest first), as objects. */
  async recorded() {
    const bodies = await this.#n.recorded();
    return bodies.map((b) => JSON.parse(b));
  }

  /** In memory mode, forget the recorded events. */
  clearRecorded() {
    this.#n.clearRecorded();
  }

  /** Whether this tracker records events instead of sending them. */
  get memory() {
    return this.#memory;
  }

  /** @internal called by the exit hooks. */
  _exit(sync) {
    if (this.#closing) return;
    const timeout = this.#flushAtExit ? this.#exitTimeoutMs : 0;
    if (sync) {
      this.#closing = true;
      live.delete(this);
      this.#n.shutdownSync(timeout);
    } else {
      this.shutdown({ timeoutMs: timeout }).catch((e) => warn('shutdown at exit', e));
    }
  }

  get [Symbol.toStringTag]() {
    return 'Tracker';
  }

  toString() {
    return this.#memory ? '[Tracker memory]' : `[Tracker ${this.#n.eventsUrl()}]`;
  }
}

if (typeof Symbol.asyncDispose === 'symbol') {
  Tracker.prototype[Symbol.asyncDispose] = function () {
    return this.shutdown().then(() => undefined);
  };
}

function ms(v, name) {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !(v >= 0)) throw configError(name, `${v} is not a duration in milliseconds`);
  return v;
}

/** The core's options in its documented order: name (camelCase), coreName, kind, default, doc. */
function options() {
  return native.options();
}

module.exports = {
  Tracker,
  Money,
  RichLink,
  TrackError,
  InvalidEventError,
  InvalidTypeError,
  TrackerClosedError,
  ConfigError,
  DeliveryError,
  ERROR_CODES,
  CORE_VERSION,
  options,
};
