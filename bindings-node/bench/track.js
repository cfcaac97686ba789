#!/usr/bin/env node
'use strict';
// The whole per-event cost on the event loop of one track call — the call
// plus every piece of work it schedules on the loop (timers, batching, HTTP
// handling) — for trackcore, @segment/analytics-node and posthog-node, side
// by side in one run, each SDK's delivery pointed at one trackcore-emulator.
//
// Measured with performance.eventLoopUtilization(): the loop's active time
// from the first call of a burst until the SDK's own flush has settled,
// divided by the calls. Waiting on sockets is idle time and is not counted.
// trackcore delivers on its own threads, so its burst is followed by one
// macrotask turn (nothing of it runs on the loop afterwards).
//
//   node bench/track.js [--calls 20000] [--repeats 5] [--write-docs]

const { performance } = require('node:perf_hooks');
const { readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { Analytics } = require('@segment/analytics-node');
const { PostHog } = require('posthog-node');
const { Tracker } = require('..');
const { Emulator } = require('../test/helpers');

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const CALLS = arg('--calls', 20000);
const REPEATS = arg('--repeats', 5);
const WRITE_DOCS = argv.includes('--write-docs');
const props = () => ({ plan: 'pro', seats: 5, annual: true });
const turn = () => new Promise((r) => setImmediate(r));

function sdks(url, token) {
  return {
    trackcore: () => {
      // Queue raised so nothing drops; dedupe off because every call is the
      // same (user, name, second); every other option at its default.
      const t = new Tracker({ baseUrl: url, accessToken: token, queueCapacity: 10_000_000, dedupe: false });
      return {
        call: () => t.track('upgraded-plan', { userId: 'u-123', metadata: props() }),
        settle: turn,
        close: () => t.shutdown({ timeoutMs: 0 }),
      };
    },
    'segment 3.1.0': () => {
      const a = new Analytics({ writeKey: 'bench', host: url, maxRetries: 0 });
      a.on('error', () => {});
      return {
        call: () => a.track({ userId: 'u-123', event: 'upgraded-plan', properties: props() }),
        settle: () => a.flush(),
        close: () => a.closeAndFlush({ timeout: 5000 }),
      };
    },
    'posthog-node 5.70.0': () => {
      const p = new PostHog('bench', { host: url, maxQueueSize: 10_000_000, fetchRetryCount: 0, disableGeoip: true });
      p.on('error', () => {});
      return {
        call: () => p.capture({ distinctId: 'u-123', event: 'upgraded-plan', properties: props() }),
        settle: () => p.flush().catch(() => {}),
        close: () => p.shutdown(5000).catch(() => {}),
      };
    },
    'floor: Array.prototype.push': () => {
      let a = [];
      return {
        call: () => a.push({ userId: 'u-123', event: 'upgraded-plan', properties: props() }),
        settle: turn,
        close: () => {
          a = [];
        },
      };
    },
  };
}

async function once(make) {
  const sdk = make();
  await turn();
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  for (let i = 0; i < CALLS; i++) sdk.call();
  const sync = performance.now() - t0;
  await sdk.settle();
  const elu = performance.eventLoopUtilization(elu0);
  await sdk.close();
  // ELU's active time covers the synchronous loop above too (it runs inside one macrotask).
  return { loopUs: (elu.active * 1000) / CALLS, syncUs: (sync * 1000) / CALLS };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const emu = await Emulator.start();
  try {
    const all = sdks(emu.url, emu.token);
    const results = Object.fromEntries(Object.keys(all).map((k) => [k, []]));
    for (const make of Object.values(all)) await once(make); // warm-up, untimed
    for (let r = 0; r < REPEATS; r++) {
      for (const [name, make] of Object.entries(all)) results[name].push(await once(make));
      process.stderr.write(`repeat ${r + 1}/${REPEATS} done\n`);
    }
    const base = median(results.trackcore.map((x) => x.loopUs));
    const rows = Object.entries(results).map(([name, xs]) => {
      const loop = xs.map((x) => x.loopUs);
      return { name, median: median(loop), min: Math.min(...loop), max: Math.max(...loop), sync: median(xs.map((x) => x.syncUs)), ratio: median(loop) / base };
    });
    const table = [
      '| SDK | median µs per event on the loop | range of repeats | synchronous part (median µs) | vs trackcore |',
      '| --- | --- | --- | --- | --- |',
      ...rows.map((r) => `| ${r.name} | ${r.median.toFixed(2)} | ${r.min.toFixed(2)}–${r.max.toFixed(2)} | ${r.sync.toFixed(2)} | ${r.ratio.toFixed(1)}× |`),
    ].join('\n');
    console.log(table);
    const ph = rows.find((r) => r.name.startsWith('posthog'));
    const sg = rows.find((r) => r.name.startsWith('segment'));
    console.log(`\nposthog-node costs ${ph.ratio.toFixed(1)}× what trackcore costs per event (floor 3×, aim 5×); segment ${sg.ratio.toFixed(1)}×`);
    if (WRITE_DOCS) writeDocs(table, ph.ratio, sg.ratio);
  } finally {
    emu.stop();
  }
}

function writeDocs(table, posthog, segment) {
  const path = join(__dirname, '..', '..', 'docs', 'benchmarks.md');
  const doc = readFileSync(path, 'utf8');
  const start = '<!-- node-bench:start -->';
  const end = '<!-- node-bench:end -->';
  const day = new Date().toISOString().slice(0, 10);
  const body = `${start}\nMeasured ${day}, Node ${process.versions.node}, ${CALLS} calls per repeat, median of ${REPEATS} repeats interleaved across SDKs.\n\n${table}\n\n- posthog-node costs **${posthog.toFixed(1)}×** what trackcore costs per event on the loop (floor 3×, aim 5×); @segment/analytics-node **${segment.toFixed(1)}×**.\n${end}`;
  if (!doc.includes(start)) throw new Error(`docs/benchmarks.md has no ${start} marker`);
  writeFileSync(path, doc.replace(new RegExp(`${start}[\\s\\S]*${end}`), body));
  console.log(`wrote ${path}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
