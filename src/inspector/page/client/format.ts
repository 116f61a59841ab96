/** Number, time and duration formatting, and the natural order of worker ids. */

type Maybe<T> = T | null | undefined;

/** worker_2 before worker_10. */
export function natural(a: unknown, b: unknown): number {
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

export function fmtMs(x: Maybe<number>): string {
  if (x === null || x === undefined) return '–';
  if (x < 1) return x.toFixed(2);
  if (x < 10) return x.toFixed(1);
  return String(Math.round(x));
}

export function fmtNum(x: Maybe<number>): string {
  if (x === null || x === undefined) return '–';
  if (x >= 100) return String(Math.round(x));
  if (x >= 10) return x.toFixed(1);
  return (Math.round(x * 10) / 10).toString();
}

/** hh:mm:ss.mmm in local time. */
export function fmtTime(t: number): string {
  const d = new Date(t);
  const p = (n: number, w?: number): string => {
    let s = String(n);
    while (s.length < (w || 2)) s = '0' + s;
    return s;
  };
  return p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()) + '.' + p(d.getMilliseconds(), 3);
}

export function fmtDur(ms: Maybe<number>): string {
  if (ms === null || ms === undefined) return '?';
  if (ms % 60000 === 0 && ms >= 60000) return ms / 60000 + ' min';
  if (ms % 1000 === 0) return ms / 1000 + ' s';
  return ms + ' ms';
}
