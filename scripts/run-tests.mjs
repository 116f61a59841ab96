#!/usr/bin/env node
// Runs every test tier, then prints one closing line that adds them all up:
//   "N passed, N failed, N skipped"
// Tiers: layer 1 (test/fast), layer 2 (test/protocol), layer 3 (test/integration), Python unit tests
// (python: the default python3; python-system: Debian's; dspy: python/tests/test_dspy_real.py with real
// DSPy from .venv/, which this script creates when it is missing: see prepareDspyVenv; dspy-pool: the same
// DSPy behind the Node pool, test/dspy; python-types: mypy --strict over python/pyvisor with the mypy
// of .venv/; cluster: test/cluster against a real nats-server, which the tests start themselves: see
// natsServer).
// Usage: node scripts/run-tests.mjs [fast|protocol|integration|python|python-system|dspy|dspy-pool|python-types|cluster ...]
//        node scripts/run-tests.mjs --prepare-dspy     (only create/update .venv; exit 1 if it cannot)
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const uvu = join(root, 'node_modules', 'uvu', 'bin.js');
const python = process.env.PYVISOR_PYTHON || 'python3';
const CI = process.env.CI === 'true';

// ---- the DSPy virtualenv (.venv/) ------------------------------------------------------------
const venv = join(root, '.venv');
const venvPython = join(venv, 'bin', 'python');
// requirements-dev.txt: requirements-dspy.txt (-r) plus the test tools (mypy, setuptools).
const requirements = join(root, 'python', 'requirements-dev.txt');
const requirementFiles = [requirements, join(root, 'python', 'requirements-dspy.txt')];
// What the venv was last installed from: a change to either requirements file updates it.
const stampFile = join(venv, '.pyvisor-requirements-sha256');
const installLog = join(venv, 'pip-install.log');
const INSTALL_CEILING_S = 1200;

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: root, maxBuffer: 64 << 20, ...opts });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error, signal: r.signal };
}

function tail(text, n = 15) {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

function requirementsHash() {
  const h = createHash('sha256');
  for (const file of requirementFiles) h.update(`${file.slice(root.length)}\0`).update(readFileSync(file)).update('\0');
  return h.digest('hex');
}

function venvDspyVersion() {
  if (!existsSync(venvPython)) return null;
  const r = sh(venvPython, ['-c', 'import dspy; print(dspy.__version__)']);
  return r.ok ? r.out.trim().split('\n').pop() : null;
}

/**
 * Make sure .venv/bin/python imports DSPy (and has mypy) from python/requirements-dev.txt, which
 * includes python/requirements-dspy.txt: when it does not (or either file changed since), `python3
 * -m venv .venv` (when there is no venv yet) and `pip install -r python/requirements-dev.txt`,
 * printing how long it took. Resolves
 * { ok: true } or { ok: false, reason, detail? } (no Python >= 3.10, no venv module, no package index...).
 */
function prepareDspyVenv() {
  const want = requirementsHash();
  const have = venvDspyVersion();
  const stamp = existsSync(stampFile) ? readFileSync(stampFile, 'utf8').trim() : '';
  if (have && stamp === want) {
    process.stdout.write(`dspy ${have} in .venv (python/requirements-dev.txt and requirements-dspy.txt unchanged)\n`);
    return { ok: true };
  }
  const base = process.env.PYVISOR_DSPY_BASE_PYTHON || 'python3';
  const started = Date.now();
  if (!existsSync(venvPython)) {
    const v = sh(base, ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3]); sys.exit(0 if sys.version_info >= (3, 10) else 1)']);
    if (v.error) return { ok: false, reason: `${base} not found (DSPy 3.x needs Python >= 3.10)` };
    if (!v.ok) return { ok: false, reason: `${base} is Python ${v.out.trim()}; DSPy 3.x needs Python >= 3.10 (set PYVISOR_DSPY_BASE_PYTHON)` };
    process.stdout.write(`creating .venv with ${base} (Python ${v.out.trim()}): python3 -m venv .venv\n`);
    const mk = sh(base, ['-m', 'venv', venv]);
    if (!mk.ok) return { ok: false, reason: `${base} -m venv .venv failed`, detail: tail(mk.out) };
  }
  process.stdout.write(`installing DSPy and the test tools into .venv: pip install -r python/requirements-dev.txt ` +
    `(${have ? `updating dspy ${have}` : 'first run only, usually 1 to 5 minutes'}; log: .venv/pip-install.log)\n`);
  const pip = sh(venvPython, ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '-r', requirements], {
    timeout: INSTALL_CEILING_S * 1000,
  });
  writeFileSync(installLog, pip.out);
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (!pip.ok) {
    const why = pip.signal ? `no result after ${INSTALL_CEILING_S} s` : 'it failed (no package index reachable?)';
    return { ok: false, reason: `pip install -r python/requirements-dev.txt: ${why} after ${secs} s`, detail: `last lines of .venv/pip-install.log:\n${tail(pip.out)}` };
  }
  const got = venvDspyVersion();
  if (!got) return { ok: false, reason: 'pip installed python/requirements-dev.txt but .venv/bin/python cannot import dspy', detail: tail(sh(venvPython, ['-c', 'import dspy']).out) };
  writeFileSync(stampFile, `${want}\n`);
  process.stdout.write(`installed dspy ${got} into .venv in ${secs} s\n`);
  return { ok: true };
}

// ---- nats-server for the cluster tier ----------------------------------------------------------

/**
 * Debian's nats-server (2.9.x, JetStream with -js), which the cluster tests start on a free
 * loopback port of their own (test/cluster/helpers.ts): { ok: true } when it is on PATH, in
 * /usr/sbin or at PYVISOR_NATS_SERVER, else { ok: false, reason } (.ci/run installs it with apt-get).
 */
function natsServer() {
  // Debian installs it as /usr/sbin/nats-server, which is not on every user's PATH.
  const exe = process.env.PYVISOR_NATS_SERVER || sh('sh', ['-c', 'command -v nats-server']).out.trim() || (existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : '');
  if (!exe) return { ok: false, reason: 'nats-server not found on PATH (Debian: apt-get install nats-server; .ci/run installs it)' };
  const v = sh(exe, ['--version']);
  if (v.error) return { ok: false, reason: `${exe}: ${v.error.code === 'ENOENT' ? 'not found' : v.error.message}` };
  if (!v.ok) return { ok: false, reason: `${exe} --version failed`, detail: tail(v.out) };
  process.stdout.write(`${v.out.trim()} (${exe})\n`);
  return { ok: true };
}

const tiers = {
  fast: { cmd: process.execPath, args: ['--import', 'tsx', uvu, 'test/fast', '.test.ts$'], parse: parseUvu },
  protocol: { cmd: process.execPath, args: ['--import', 'tsx', uvu, 'test/protocol', '.test.ts$'], parse: parseUvu },
  integration: { cmd: process.execPath, args: ['--import', 'tsx', uvu, 'test/integration', '.test.ts$'], parse: parseUvu },
  python: { cmd: python, args: ['-m', 'unittest', 'discover', '-s', 'tests', '-t', '.'], cwd: join(root, 'python'), parse: parseUnittest },
  // The same suite under Debian's interpreter, which has the msgpack module: the second codec.
  'python-system': { cmd: '/usr/bin/python3', args: ['-m', 'unittest', 'discover', '-s', 'tests', '-t', '.'], cwd: join(root, 'python'), parse: parseUnittest },
  // Real DSPy in the worker (python/tests/test_dspy_real.py) with .venv/bin/python, made first when
  // needed. PYVISOR_DSPY_TESTS=require: there the tests fail, not skip, when dspy is not importable.
  dspy: {
    cmd: venvPython,
    args: ['-m', 'unittest', 'discover', '-s', 'tests', '-t', '.', '-p', 'test_dspy_real.py'],
    cwd: join(root, 'python'),
    env: { PYVISOR_DSPY_TESTS: 'require' },
    parse: parseUnittest,
    prepare: prepareDspyVenv,
  },
  // The same real DSPy behind the Node pool and PythonPool (test/dspy/*.test.ts), workers on .venv/bin/python.
  'dspy-pool': {
    cmd: process.execPath,
    args: ['--import', 'tsx', uvu, 'test/dspy', '.test.ts$'],
    env: { PYVISOR_DSPY_PYTHON: venvPython },
    parse: parseUvu,
    prepare: prepareDspyVenv,
    dir: 'test/dspy',
  },
  // mypy --strict over the package with .venv's mypy, from python/ (files and options: python/pyproject.toml
  // [tool.mypy]); its cache stays in .venv/, out of the shipped python/ folder.
  'python-types': {
    cmd: venvPython,
    args: ['-m', 'mypy', '--cache-dir', join(venv, '.mypy_cache')],
    cwd: join(root, 'python'),
    parse: parseMypy,
    prepare: prepareDspyVenv,
  },
  // Agents, front ends and a real nats-server, each its own process (test/cluster/*.test.ts).
  // Skipped with the reason when nats-server is missing (a failure under CI=true).
  cluster: {
    cmd: process.execPath,
    args: ['--import', 'tsx', uvu, 'test/cluster', '.test.ts$'],
    parse: parseUvu,
    prepare: natsServer,
    group: true,
  },
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

// "Success: no issues found in N source files" is one passed check; "Found N errors in M files
// (checked K source files)" is N failed ones (the error lines themselves are already printed).
function parseMypy(out) {
  const text = strip(out);
  if (/^Success: no issues found in \d+ source files?$/m.test(text)) return { passed: 1, failed: 0, skipped: 0 };
  const found = /^Found (\d+) errors? in \d+ files?/m.exec(text);
  if (found) return { passed: 0, failed: Number(found[1]), skipped: 0 };
  return null;
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
  process.stdout.write(`\n=== ${name} ===\n`);
  if (tier.prepare) {
    const ready = tier.prepare();
    if (!ready.ok) {
      // Cannot run here (no network for the install, no Python >= 3.10, no nats-server): skipped,
      // with the reason. Under CI=true that is a failure: CI must run the real-DSPy and cluster tiers.
      const failed = CI ? 1 : 0;
      if (ready.detail) process.stdout.write(`${ready.detail}\n`);
      process.stdout.write(`--- ${name}: 0 passed, ${failed} failed, 1 skipped (skipped: ${ready.reason}${CI ? '; a failure under CI=true' : ''})\n`);
      return Promise.resolve({ passed: 0, failed, skipped: 1 });
    }
  }
  return new Promise((resolve) => {
    const started = Date.now();
    // A tier whose tests spawn their own servers (cluster) runs in a process group of its own,
    // so that the ceiling (or a Ctrl-C of this script) ends everything it started, not only uvu.
    const child = spawn(tier.cmd, tier.args, { cwd: tier.cwd ?? root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: '0', ...tier.env }, detached: !!tier.group });
    const killTier = () => {
      try {
        if (tier.group) process.kill(-child.pid, 'SIGKILL');
        else child.kill('SIGKILL');
      } catch {
        // already gone
      }
    };
    const onSignal = (sig) => {
      killTier();
      process.exit(sig === 'SIGINT' ? 130 : 143);
    };
    if (tier.group) for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, onSignal);
    let out = '';
    let timedOut = false;
    const ceiling = setTimeout(() => {
      timedOut = true;
      process.stdout.write(`\n!!! ${name}: no result after ${CEILING_S[name]} s, killing it\n`);
      killTier();
    }, CEILING_S[name] * 1000);
    child.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
    child.stderr.on('data', (d) => { out += d; process.stderr.write(d); });
    child.on('close', (code, signal) => {
      clearTimeout(ceiling);
      if (tier.group) {
        for (const sig of ['SIGINT', 'SIGTERM']) process.off(sig, onSignal);
        killTier(); // whatever the tier left running in its group (a runner that crashed)
      }
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
const CEILING_S = { fast: 180, protocol: 240, integration: 720, python: 300, 'python-system': 300, dspy: 300, 'dspy-pool': 300, 'python-types': 300, cluster: 420 };

if (process.argv.includes('--prepare-dspy')) {
  const ready = prepareDspyVenv();
  if (!ready.ok) console.log(`cannot prepare .venv: ${ready.reason}${ready.detail ? `\n${ready.detail}` : ''}`);
  process.exit(ready.ok ? 0 : 1);
}

const wanted = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(tiers);
const totals = { passed: 0, failed: 0, skipped: 0 };
for (const name of wanted) {
  if (!tiers[name]) {
    console.error(`unknown tier "${name}" (known: ${Object.keys(tiers).join(', ')})`);
    process.exit(2);
  }
  if (name.startsWith('python') || name === 'dspy') {
    if (name === 'python-system' && (!existsSync('/usr/bin/python3') || sameInterpreter(python, '/usr/bin/python3'))) continue;
  } else if (!hasTests(tiers[name].dir ?? `test/${name}`)) continue;
  const counts = await run(name);
  totals.passed += counts.passed;
  totals.failed += counts.failed;
  totals.skipped += counts.skipped;
}
console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(totals.failed > 0 ? 1 : 0);
