/**
 * The inspector page: one HTML document with its CSS and script inline, so nothing is fetched
 * from anywhere but the pool's own /events stream. The script (./client/, TypeScript bundled
 * by esbuild: see ./bundle.ts) draws everything itself (SVG), including each worker's state
 * machine, laid out from the machine description the server sends (../machineGraph.ts),
 * never from a hand-drawn copy.
 */
import { pageScript } from './bundle.js';
import { pageDocument } from './template.js';

/** The page, with the nonce its Content-Security-Policy allows for the inline script. */
export function renderPage(nonce: string): string {
  return pageDocument(nonce, pageScript());
}

/** The inline script alone (for syntax checks). */
export { pageScript };
