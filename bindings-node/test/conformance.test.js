'use strict';
// Runs every shared conformance vector (tests/conformance/*.json, format in
// that folder's README) through the public Node API: one memory-mode Tracker
// per case, each step tracked in order, the recorded body or thrown error
// code compared with the expectation — the same vectors Rust and Python run.

const test = require('node:test');
const assert = require('node:assert/strict');
const { readdirSync, readFileSync } = require('node:fs');
const { join } = require('node:path');
const trackcore = require('..');
const { REPO } = require('./helpers');

const VECTORS = join(REPO, 'tests', 'conformance');
const MIN_CASES = 60;
const NOW_SLACK = 5;
const FIELD_ORDER = ['event_name', 'created_at', 'user_id', 'id', 'email', 'metadata'];
const INPUT_KEYS = { user_id: 'userId', id: 'id', email: 'email', created_at: 'createdAt', metadata: 'metadata' };

const cases = [];
for (const file of readdirSync(VECTORS).filter((f) => f.endsWith('.json')).sort()) {
  for (const c of JSON.parse(readFileSync(join(VECTORS, file), 'utf8')).cases) {
    cases.push([`${file.replace(/\.json$/, '')}::${c.name}`, c]);
  }
}

function special(v) {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0].startsWith('$')) return [keys[0], v[keys[0]]];
  }
  return null;
}

const now = () => Math.floor(Date.now() / 1000);

/** A vector's value as the JavaScript value a user would pass. */
function native(v) {
  const sp = special(v);
  if (sp) {
    const [form, arg] = sp;
    switch (form) {
      case '$date': return new Date(arg * 1000);
      case '$money': return new trackcore.Money(arg[0], arg[1]);
      case '$rich_link': return new trackcore.RichLink(arg[0], arg[1]);
      case '$float': return Number(arg === 'inf' ? Infinity : arg === '-inf' ? -Infinity : NaN);
      case '$bigint': return BigInt(arg);
      case '$repeat': return arg[0].repeat(arg[1]);
      case '$now_plus': return now() + arg;
      default: throw new Error(`unknown special form ${form}`);
    }
  }
  if (Array.isArray(v)) return v.map(native);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, native(x)]));
  return v;
}

function expand(v) {
  const sp = special(v);
  if (sp && sp[0] === '$repeat') return sp[1][0].repeat(sp[1][1]);
  if (Array.isArray(v)) return v.map(expand);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, expand(x)]));
  return v;
}

function args(input) {
  const opts = {};
  for (const [k, v] of Object.entries(input)) {
    if (k === 'event_name') continue;
    if (!(k in INPUT_KEYS)) throw new Error(`unknown input key ${k}`);
    opts[INPUT_KEYS[k]] = native(v);
  }
  return [input.event_name === undefined ? '' : native(input.event_name), opts];
}

function checkBody(actual, expected, before, after) {
  expected = expand(expected);
  const problems = [];
  if (expected.created_at === '$now') {
    const t = actual.created_at;
    if (!(Number.isInteger(t) && t >= before - NOW_SLACK && t <= after + NOW_SLACK)) {
      problems.push(`created_at: got ${t}, expected now (${before}..${after})`);
    }
    expected = { ...expected, created_at: t };
  }
  try {
    assert.deepStrictEqual(actual, expected);
  } catch (e) {
    problems.push(e.message.slice(0, 600));
  }
  const fields = Object.keys(actual);
  const ordered = FIELD_ORDER.filter((f) => f in actual);
  if (fields.join() !== ordered.join()) problems.push(`field order: ${fields}`);
  if (Object.keys(actual.metadata || {}).join() !== Object.keys(expected.metadata || {}).join()) {
    problems.push(`metadata key order: got ${Object.keys(actual.metadata || {})}`);
  }
  return problems;
}

test('the conformance directory holds at least 60 cases', () => {
  assert.ok(cases.length >= MIN_CASES, `only ${cases.length} cases under ${VECTORS}`);
});

test('every error code the vectors expect is a code the core exports', () => {
  const used = new Set();
  for (const [, c] of cases) for (const s of c.steps || [c]) if (s.expect.error) used.add(s.expect.error);
  assert.ok(used.size > 0);
  for (const code of used) assert.ok(trackcore.ERROR_CODES.includes(code), code);
});

for (const [name, c] of cases) {
  test(`conformance: ${name}`, async () => {
    const tracker = new trackcore.Tracker({ ...Object.fromEntries(Object.entries(c.options || {}).map(([k, v]) => [k.replace(/_([a-z])/g, (_, ch) => ch.toUpperCase()), v])), memory: true });
    const steps = c.steps || [{ input: c.input, expect: c.expect }];
    const problems = [];
    try {
      for (const [i, step] of steps.entries()) {
        const n = i + 1;
        const before = now();
        const [eventName, opts] = args(step.input);
        const recordedBefore = (await tracker.recorded()).length;
        let error = null;
        try {
          tracker.track(eventName, opts);
        } catch (e) {
          if (!(e instanceof trackcore.TrackError)) throw e;
          error = e;
        }
        const after = now();
        const recorded = await tracker.recorded();
        if (step.expect.body) {
          if (error) problems.push(`step ${n}: threw ${error.code}: ${error.message}`);
          else if (recorded.length !== recordedBefore + 1) problems.push(`step ${n}: recorded ${recorded.length - recordedBefore} bodies`);
          else problems.push(...checkBody(recorded.at(-1), step.expect.body, before, after).map((p) => `step ${n}: ${p}`));
        } else {
          if (!error) {
            problems.push(`step ${n}: expected error ${step.expect.error}, got body ${JSON.stringify(recorded.at(-1)).slice(0, 200)}`);
            continue;
          }
          if (error.code !== step.expect.error) problems.push(`step ${n}: threw ${error.code} (${error.message}), expected ${step.expect.error}`);
          if ('field' in step.expect && error.field !== step.expect.field) problems.push(`step ${n}: field ${error.field}, expected ${step.expect.field}`);
          if (!(error instanceof trackcore.InvalidEventError || error instanceof trackcore.InvalidTypeError)) {
            problems.push(`step ${n}: ${error.name} is not an input error`);
          }
        }
      }
    } finally {
      await tracker.shutdown({ timeoutMs: 2000 });
    }
    assert.deepEqual(problems, []);
  });
}
