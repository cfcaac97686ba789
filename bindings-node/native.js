'use strict';
// Finds the prebuilt native module for this platform: first beside this file
// (a local build, or the tarball `npm pack` makes), then in the per-platform
// package napi-rs's layout publishes (`trackcore-<platform>`).

const { existsSync, readFileSync } = require('node:fs');
const { join } = require('node:path');

function isMusl() {
  if (process.platform !== 'linux') return false;
  try {
    const report = process.report && process.report.getReport();
    if (report && report.header) return !report.header.glibcVersionRuntime;
  } catch {}
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
  } catch {
    return false;
  }
}

/** `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`, ... as napi-rs names platforms. */
function platformTriple() {
  const { platform, arch } = process;
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

function loadNative() {
  const triple = platformTriple();
  const local = join(__dirname, `trackcore.${triple}.node`);
  const tried = [];
  if (existsSync(local)) return require(local);
  tried.push(local);
  try {
    return require(`trackcore-${triple}`);
  } catch (e) {
    tried.push(`trackcore-${triple} (${e.code || e.message})`);
  }
  throw new Error(
    `trackcore: no prebuilt native module for ${triple}; looked for ${tried.join(' and ')}. ` +
      'Build it with `npm run build` in bindings-node (needs cargo).',
  );
}

module.exports = { loadNative, platformTriple };
