/**
 * The types of the inspector's event stream that both ends build or read: the server
 * (src/inspector/server.ts) and the page (src/inspector/page/client).
 */
export type LogKind = 'life' | 'work' | 'sub' | 'restart' | 'escalation' | 'session' | 'spawn' | 'pool';

export interface LogEntry {
  seq: number;
  t: number;
  kind: LogKind;
  /** Actor (worker id, supervisor or session id) the entry is about. */
  w: string;
  from?: string;
  to?: string;
  /** Full state path of `to`, e.g. live.restarting.awaitReady. */
  path?: string;
  /** The event that caused it. */
  e?: string;
  pid?: number | null;
  text?: string;
}

export interface EventSummary {
  t: number;
  to: string;
  from: string | null;
  type: string;
  data?: Record<string, unknown>;
}
