#!/usr/bin/env node
'use strict';
// Builds the native module with cargo (release) and puts it where the loader
// and `npm pack` find it: ./trackcore.<platform>.node and the per-platform
// package under npm/<platform>/. `--debug` builds without optimisations.
const { execFileSync } = require('node:child_process');
const { copyFileSync, mkdirSync, writeFileSync, readFileSync } = require('node:fs');
const { join, resolve } = require('node:path');
const { platformTriple } = require('../native.js');

const here = resolve(__dirname, '..');
const root = resolve(here, '..');
const debug = process.argv.includes('--debug');
const args = ['build', '--locked', '-q', '-p', 'trackcore-node'];
if (!debug) args.push('--release');
execFileSync('cargo', args, { cwd: root, stdio: 'inherit' });

const lib = { linux: 'libtrackcore_node.so', darwin: 'libtrackcore_node.dylib', win32: 'trackcore_node.dll' }[process.platform];
const targetDir = process.env.CARGO_TARGET_DIR || join(root, 'target');
const built = join(targetDir, debug ? 'debug' : 'release', lib);
const triple = platformTriple();
const name = `trackcore.${triple}.node`;
copyFileSync(built, join(here, name));

// napi-rs's per-platform package, for publishing one package per platform.
const pkg = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'));
const dir = join(here, 'npm', triple);
mkdirSync(dir, { recursive: true });
copyFileSync(built, join(dir, name));
const [os, cpu, abi] = triple.split('-');
const platformPkg = {
  name: `trackcore-${triple}`,
  version: pkg.version,
  description: `trackcore's native module for ${triple}`,
  license: pkg.license,
  main: name,
  files: [name],
  os: [os],
  cpu: [cpu],
  ...(abi === 'gnu' || abi === 'musl' ? { libc: [abi === 'gnu' ? 'glibc' : 'musl'] } : {}),
};
writeFileSync(join(dir, 'package.json'), JSON.stringify(platformPkg, null, 2) + '\n');
console.error(`built ${name}`);
