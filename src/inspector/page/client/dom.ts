/** Small DOM helpers: element lookup and creation, HTML escaping. */

const SVGNS = 'http://www.w3.org/2000/svg';

/** The page element with this id (every id the script uses is in the page's markup). */
export function $(id: string): HTMLElement {
  const e = document.getElementById(id);
  if (!e) throw new Error('inspector page: no element #' + id);
  return e;
}

/** An HTML element with an optional class and text. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string | null, text?: unknown): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

export type SvgAttrs = Record<string, string | number | null | undefined>;

/** An SVG element; attributes that are null or undefined are left out. */
export function sv<K extends keyof SVGElementTagNameMap>(tag: K, attrs?: SvgAttrs): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVGNS, tag);
  if (attrs) {
    for (const k in attrs) {
      const v = attrs[k];
      if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    }
  }
  return e;
}

const ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text made safe for HTML content and attribute values (null and undefined are empty). */
export function esc(s: unknown): string {
  return String(s === undefined || s === null ? '' : s).replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}
