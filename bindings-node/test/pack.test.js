'use strict';
// `npm pack` makes a tarball that carries the prebuilt native module; it
// installs into an empty project on a PATH without cargo and tracks an event
// from CommonJS and ESM.

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const { mkdtempSync, writeFileSync, rmSync, existsSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join, dirname } = require('node:path');
const { emulator, runNode } = require('./helpers');

const PKG = join(__dirname, '..');

test('the packed tarball installs without cargo and delivers an event', async (t) => {
  const emu = await emulator(t);
  const dir = mkdtempSync(join(tmpdir(), 'trackcore-pack-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const npm = process.env.npm_execpath && existsSync(process.env.npm_execpath) ? [process.execPath, process.env.npm_execpath] : ['npm'];
  const run = (args, cwd, env = process.env) => execFileSync(npm[0], [...npm.slice(1), ...args], { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

  const packed = JSON.parse(run(['pack', '--json', '--pack-destination', dir], PKG));
  const files = packed[0].files.map((f) => f.path);
  assert.ok(files.some((f) => /^trackcore\..+\.node$/.test(f)), `the tarball carries the native module: ${files}`);
  assert.ok(files.includes('index.d.ts') && files.includes('index.mjs'));

  // Only node's own directory and the system's: no cargo, no rustc.
  const bare = { PATH: `${dirname(process.execPath)}:/usr/bin:/bin`, HOME: dir, npm_config_cache: join(dir, '.npm') };
  assert.notEqual(spawnSync('cargo', ['--version'], { env: bare }).status, 0, 'cargo is not on the bare PATH');
  const app = join(dir, 'app');
  execFileSync('mkdir', [app]);
  writeFileSync(join(app, 'package.json'), '{"name":"app","private":true}');
  run(['install', '--offline', '--no-audit', '--no-fund', join(dir, packed[0].filename)], app, { ...process.env, ...bare });

  const env = { ...bare, URL: emu.url, INTERCOM_ACCESS_TOKEN: emu.token };
  const cjs = await runNode(
    "const { Tracker } = require('trackcore'); const t = new Tracker({ baseUrl: process.env.URL }); " +
      "t.track('from-tarball', { userId: 'cjs' }); t.flush({ timeoutMs: 10000 }).then((ok) => console.log(ok));",
    { env, cwd: app },
  );
  assert.equal(cjs.code, 0, cjs.stderr);
  assert.equal(cjs.stdout.trim(), 'true');
  const esm = await runNode(
    "import { Tracker } from 'trackcore'; const t = new Tracker({ baseUrl: process.env.URL }); " +
      "t.track('from-tarball', { userId: 'esm' }); console.log(await t.flush({ timeoutMs: 10000 }));",
    { env, cwd: app, args: ['--input-type=module'] },
  );
  assert.equal(esm.code, 0, esm.stderr);
  const users = (await emu.waitEvents(2)).map((e) => e.user_id).sort();
  assert.deepEqual(users, ['cjs', 'esm']);
});
