/**
 * npm run stress [-- --requests=1000000] [-- --workers=4] [-- --concurrency=16] [-- --python=python3]
 *
 * The soak at full size: a million requests through 4 real Python workers (50,000 in CI, from
 * test/integration/chaos.test.ts). Prints the memory samples (Node heap after a full GC, each
 * worker's RSS) and checks both stay within 10% of their post-warm-up level; exits 1 otherwise.
 */
import { soak } from '../chaos/soak.js';
import { PYTHON } from '../chaos/common.js';

const argv = process.argv.slice(2);
const value = (name: string, dflt: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? dflt;

const r = await soak({
  requests: Number(value('requests', '1000000')),
  workers: Number(value('workers', '4')),
  concurrency: Number(value('concurrency', '16')),
  python: value('python', PYTHON),
  samples: 25,
  log: (l) => console.log(l),
});
console.log('\n  requests done   Node heap MiB   Node RSS MiB   Python RSS MiB per worker');
for (const s of r.samples) console.log(`  ${String(s.done).padStart(13)}   ${s.heapMb.toFixed(1).padStart(13)}   ${s.rssMb.toFixed(1).padStart(12)}   ${s.pythonRssMb.map((x) => x.toFixed(1)).join('  ')}`);
console.log(`\n  ${r.requests.toLocaleString('en-US')} requests in ${r.seconds.toFixed(1)} s (${Math.round(r.perSecond)}/s), ${r.errors} errors, ${r.restarts} restarts`);
console.log(`  growth after warm-up: Node heap ${(r.heapGrowth * 100).toFixed(1)}%, Python RSS ${r.pythonRssGrowth.map((g) => `${(g * 100).toFixed(1)}%`).join(', ')} (limit 10%)`);
for (const v of r.violations) console.log(`  VIOLATION: ${v}`);
console.log(r.violations.length ? '\nstress: FAILED' : '\nstress: passed');
process.exit(r.violations.length ? 1 : 0);
