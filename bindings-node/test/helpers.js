'use strict';
// Test helpers: a real trackcore-emulator process on 127.0.0.1 per test, and
// its control endpoints. Tests synchronise on the emulator's gate and wait
// endpoints (answered the moment the condition holds), never on sleeps.

const { spawn } = require('node:child_process');
const { resolve } = require('node:path');
const { existsSync } = require('node:fs');
const readline = require('node:readline');

const TOKEN = 'test-token';
const REPO = resolve(__dirname, '..', '..');

function emulatorBinary() {
  const path = process.env.TRACKCORE_EMULATOR || resolve(REPO, 'target', 'release', 'trackcore-emulator');
  if (!existsSync(path)) {
    throw new Error(`emulator binary not found at ${path}: build it with \`cargo build --release -p trackcore-emulator\` (run-tests.sh does)`);
  }
  return path;
}

class Emulator {
  static async start(...args) {
    const proc = spawn(emulatorBinary(), ['--port', '0', '--token', TOKEN, '--exit-on-stdin-close', '--rate-limit-per-minute', '0', ...args], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const rl = readline.createInterface({ input: proc.stdout });
    const line = await new Promise((ok, fail) => {
      rl.once('line', ok);
      proc.once('exit', (code) => fail(new Error(`emulator exited with ${code} before it listened`)));
    });
    rl.close();
    proc.stdout.resume();
    const prefix = 'trackcore-emulator listening on ';
    if (!line.startsWith(prefix)) {
      proc.kill();
      throw new Error(`emulator did not start: ${line}`);
    }
    const emu = new Emulator(proc, line.slice(prefix.length).trim());
    return emu;
  }

  constructor(proc, url) {
    this.proc = proc;
    this.url = url;
    this.token = TOKEN;
  }

  async call(method, path, body) {
    const res = await fetch(this.url + path, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  async events() {
    return (await this.call('GET', '/__emulator/events')).body;
  }

  async stats() {
    return (await this.call('GET', '/__emulator/stats')).body;
  }

  /** Answer the next POST /events with these responses, in order. */
  async script(responses) {
    await this.call('POST', '/__emulator/script', responses);
  }

  /** Close the gate: POST /events are held unanswered until released. */
  async hold() {
    await this.call('POST', '/__emulator/gate', { hold: true });
  }

  /** Open the gate and release every held request. */
  async open() {
    await this.call('POST', '/__emulator/gate', { hold: false });
  }

  /** Whether `n` requests are held at the gate within `timeoutMs`. */
  async waitHeld(n, timeoutMs = 10000) {
    return (await this.call('GET', `/__emulator/gate/wait?held=${n}&timeout_ms=${timeoutMs}`)).status === 200;
  }

  /** Wait (on the emulator's side) until `n` events are stored; the events. */
  async waitEvents(n, timeoutMs = 10000) {
    const r = await this.call('GET', `/__emulator/events/wait?count=${n}&timeout_ms=${timeoutMs}`);
    if (r.status !== 200) throw new Error(`emulator stored ${r.body && r.body.stored} events, expected ${n}`);
    return this.events();
  }

  stop() {
    if (this.proc.exitCode === null) {
      this.proc.stdin.end();
      this.proc.kill();
    }
  }
}

/** A fresh emulator for one test, stopped after it. */
async function emulator(t, ...args) {
  const emu = await Emulator.start(...args);
  t.after(() => emu.stop());
  return emu;
}

/** A promise and the function that resolves it. */
function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

/** Run a Node script in a fresh process; resolves with its exit code and output. */
function runNode(code, { env = {}, args = [], timeoutMs = 60000, cwd } = {}) {
  return new Promise((ok) => {
    const child = spawn(process.execPath, [...args, '-e', code], {
      env: { ...process.env, ...env },
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      ok({ code, signal, stdout, stderr });
    });
  });
}

module.exports = { Emulator, emulator, deferred, runNode, TOKEN, REPO };
