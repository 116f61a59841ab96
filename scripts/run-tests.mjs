#!/usr/bin/env node
// Runs every test tier, then prints one closing line that adds them all up:
//   "N passed, N failed, N skipped"
// Tiers: layer 1 (test/fast), layer 2 (test/protocol), layer 3 (test/integration), Python unit tests.
// Usage: node scripts/run-tests.mjs [fast|protocol|integration|python ...]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const uvu = join(root, 'node_modules', 'uvu', 'bin.js');
const python = process.env.PYVISOR_PYTHON || 'python3';

const tiers = {
  fast: { cmd: process.execPath, args: ['--import', 'tsx', uvu, 'test/fast', '.test.ts$'], parse: parseUvu },
  protocol: { cmd: process.execPath, args: ['--import', 'tsx', uvu, 'test/protocol', '.test.ts$'], parse: parseUvu },
  integration: { cmd: process.execPath, args: ['--import', 'tsx', uvu, 'test/integration', '.test.ts$'], parse: parseUvu },
  python: { cmd: python, args: ['-m', 'unittest', 'discover', '-s', 'tests', '-t', '.'], cwd: join(root, 'python'), parse: parseUnittest },
  // The same suite under Debian's interpreter, which has the msgpack module: the second codec.
  'python-system': { cmd: '/usr/bin/python3', args: ['-m', 'unittest', 'discover', '-s', 'tests', '-t', '.'], cwd: join(root, 'python'), parse: parseUnittest },
};

function strip(text) {
  return text.replace(/\x1b\[[0-9;]*m/g, '');
}

function parseUvu(out) {
  const text = strip(out);
  const total = Number(/Total:\s+(\d+)/.exec(text)?.[1] ?? NaN);
  const passed = Number(/Passed:\s+(\d+)/.exec(text)?.[1] ?? NaN);
  const skipped = Number(/Skipped:\s+(\d+)/.exec(text)?.[1] ?? 0);
  if (Number.isNaN(total)) return null;
  // uvu's Total counts run tests (passed + failed); skipped ones are reported apart.
  return { passed, failed: total - passed, skipped };
}

function parseUnittest(out) {
  const text = strip(out);
  const ran = /Ran (\d+) tests?/.exec(text);
  if (!ran) return null;
  const total = Number(ran[1]);
  const m = /FAILED \(([^)]*)\)/.exec(text);
  const count = (key) => Number(new RegExp(`${key}=(\\d+)`).exec(m?.[1] ?? '')?.[1] ?? 0);
  const skipped = Number(/skipped=(\d+)/.exec(text)?.[1] ?? 0);
  const failed = count('failures') + count('errors');
  return { passed: total - failed - skipped, failed, skipped };
}

function sameInterpreter(a, b) {
  const exe = (py) => spawnSync(py, ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).stdout?.trim();
  return exe(a) === exe(b);
}

function hasTests(dir) {
  const full = join(root, dir);
  return existsSync(full) && readdirSync(full).some((f) => f.endsWith('.test.ts'));
}

function run(name) {
  const tier = tiers[name];
  return new Promise((resolve) => {
    const started = Date.now();
    process.stdout.write(`\n=== ${name} ===\n`);
    const child = spawn(tier.cmd, tier.args, { cwd: tier.cwd ?? root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0' } });
    let out = '';
    let timedOut = false;
    const ceiling = setTimeout(() => {
      timedOut = true;
      process.stdout.write(`\n!!! ${name}: no result after ${CEILING_S[name]} s, killing it\n`);
      child.kill('SIGKILL');
    }, CEILING_S[name] * 1000);
    child.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
    child.stderr.on('data', (d) => { out += d; process.stderr.write(d); });
    child.on('close', (code, signal) => {
      clearTimeout(ceiling);
      let counts = timedOut ? null : tier.parse(out);
      if (!counts) counts = { passed: 0, failed: 1, skipped: 0 };
      // A crashed runner, or one that exits non-zero with nothing failed, still counts as a failure.
      if ((code !== 0 || signal) && counts.failed === 0) counts.failed = 1;
      const secs = ((Date.now() - started) / 1000).toFixed(1);
      process.stdout.write(`--- ${name}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped (${secs}s, exit ${code ?? signal})\n`);
      resolve(counts);
    });
  });
}

// A tier that hangs must fail, not stall CI: each gets a ceiling well above its normal time.
const CEILING_S = { fast: 180, protocol: 240, integration: 720, python: 300, 'python-system': 300 };

const wanted = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(tiers);
const totals = { passed: 0, failed: 0, skipped: 0 };
for (const name of wanted) {
  if (!tiers[name]) {
    console.error(`unknown tier "${name}" (known: ${Object.keys(tiers).join(', ')})`);
    process.exit(2);
  }
  if (name.startsWith('python')) {
    if (name === 'python-system' && (!existsSync('/usr/bin/python3') || sameInterpreter(python, '/usr/bin/python3'))) continue;
  } else if (!hasTests(`test/${name}`)) continue;
  const counts = await run(name);
  totals.passed += counts.passed;
  totals.failed += counts.failed;
  totals.skipped += counts.skipped;
}
console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(totals.failed > 0 ? 1 : 0);
