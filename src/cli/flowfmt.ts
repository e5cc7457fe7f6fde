// Printing stored flows: an aligned table for a terminal, JSON, or CSV.
import { PROTO_NAMES, SCTP_STATES, TCP_STATES } from '../records/values.js';
import { FLAG_NAMES, natKind } from '../records/flow.js';
import type { StoredFlow, TopRow } from '../store/store.js';
import { isoTime } from '../util/time.js';

export const protoName = (p: number) => PROTO_NAMES[p] ?? String(p);

export function hostPort(addr: string | null, port: number | null, proto: number): string {
  if (addr === null) return '-';
  const a = addr.includes(':') ? `[${addr}]` : addr;
  if (port === null || proto === 1 || proto === 58) return a;
  return `${a}:${port}`;
}

function stateName(f: StoredFlow): string | null {
  if (f.state === null) return null;
  const names = f.proto === 6 ? TCP_STATES : f.proto === 132 ? SCTP_STATES : undefined;
  return names?.[f.state] ?? String(f.state);
}

export function flagList(flags: number): string[] {
  return FLAG_NAMES.filter(([bit]) => flags & bit).map(([, n]) => n);
}

/**
 * Where the inside host and the public address are, by NAT kind. A flow
 * with both translations (a port forward that is also masqueraded) is seen
 * from its destination (the forwarded address), unless `bySource`.
 */
export function sides(f: StoredFlow, bySource = false): { inside: string; public: string | null; remote: string } {
  const k = natKind(f);
  if (k === 'both' && !bySource) return { inside: hostPort(f.natDst, f.natDport, f.proto), public: hostPort(f.dst, f.dport, f.proto), remote: hostPort(f.src, f.sport, f.proto) };
  if (k === 'snat' || k === 'both') return { inside: hostPort(f.src, f.sport, f.proto), public: hostPort(f.natSrc, f.natSport, f.proto), remote: hostPort(f.dst, f.dport, f.proto) };
  if (k === 'dnat') return { inside: hostPort(f.natDst, f.natDport, f.proto), public: hostPort(f.dst, f.dport, f.proto), remote: hostPort(f.src, f.sport, f.proto) };
  return { inside: hostPort(f.src, f.sport, f.proto), public: null, remote: hostPort(f.dst, f.dport, f.proto) };
}

const errUs = (us: number) => (us >= Number.MAX_SAFE_INTEGER ? null : us);

/**
 * A flow as JSON: times in ISO 8601 (to the µs) and µs since the epoch,
 * how uncertain they are, when it was last active, the translation spelled out.
 */
/** `inodes`: the namespaces' inodes where the store knows them (`netns_inode`) */
export function flowJson(f: StoredFlow, ns: Map<number, string>, inodes?: Map<number, number>): Record<string, unknown> {
  const nat = natKind(f);
  return {
    start: isoTime(f.start), start_us: f.start, start_err_us: errUs(f.startErr), start_unbounded: f.startErr >= Number.MAX_SAFE_INTEGER,
    end: f.end === null ? null : isoTime(f.end), end_us: f.end, end_err_us: f.endErr,
    active_until: f.activeEnd === null ? null : isoTime(f.activeEnd), active_until_us: f.activeEnd,
    duration_us: f.end === null ? null : f.end - f.start, open: f.end === null,
    proto: protoName(f.proto),
    orig: { src: f.src, sport: f.sport, dst: f.dst, dport: f.dport },
    nat,
    snat: f.natSrc === null ? null : { inside: { addr: f.src, port: f.sport }, public: { addr: f.natSrc, port: f.natSport } },
    dnat: f.natDst === null ? null : { public: { addr: f.dst, port: f.dport }, inside: { addr: f.natDst, port: f.natDport } },
    packets: { orig: f.origPackets, reply: f.replyPackets }, bytes: { orig: f.origBytes, reply: f.replyBytes },
    state: stateName(f), mark: f.mark, zone: f.zone, status: f.status, id: f.ctId,
    flags: flagList(f.flags), netns: ns.get(f.ns) ?? '',
    ...(inodes?.has(f.ns) ? { netns_inode: inodes.get(f.ns) } : {}),
  };
}

const HEAD = ['START', 'END', 'PROTO', 'SOURCE', 'DESTINATION', 'NAT', 'TRANSLATED', 'PACKETS', 'BYTES', 'STATE', 'FLAGS'];

function row(f: StoredFlow): string[] {
  const k = natKind(f);
  const tr: string[] = [];
  if (f.natSrc !== null) tr.push(`src ${hostPort(f.natSrc, f.natSport, f.proto)}`);
  if (f.natDst !== null) tr.push(`dst ${hostPort(f.natDst, f.natDport, f.proto)}`);
  const sum = (a: number | null, b: number | null) => (a === null && b === null ? '-' : String((a ?? 0) + (b ?? 0)));
  return [
    isoTime(f.start), f.end === null ? 'open' : isoTime(f.end), protoName(f.proto),
    hostPort(f.src, f.sport, f.proto), hostPort(f.dst, f.dport, f.proto), k, tr.join(' ') || '-',
    sum(f.origPackets, f.replyPackets), sum(f.origBytes, f.replyBytes), stateName(f) ?? '-', flagList(f.flags).join(',') || '-',
  ];
}

export function alignedTable(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join('  ');
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}

/** `procs`: with a PROCESS column, each flow's (flows --process) */
export function flowsTable(flows: StoredFlow[], procs?: string[]): string {
  if (!procs) return alignedTable(HEAD, flows.map(row));
  return alignedTable([...HEAD, 'PROCESS'], flows.map((f, i) => [...row(f), procs[i]]));
}

export const csvCell = (v: unknown): string => {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export const CSV_HEAD = ['start', 'end', 'duration_us', 'active_until', 'proto', 'src', 'sport', 'dst', 'dport', 'nat', 'nat_src', 'nat_sport',
  'nat_dst', 'nat_dport', 'orig_packets', 'orig_bytes', 'reply_packets', 'reply_bytes', 'state', 'mark', 'zone', 'id', 'flags', 'netns'];

/** `procs`: with a process column, each flow's (flows --process) */
export function flowsCsv(flows: StoredFlow[], ns: Map<number, string>, procs?: string[]): string {
  const out = [(procs ? [...CSV_HEAD, 'process'] : CSV_HEAD).join(',')];
  for (const [i, f] of flows.entries()) {
    out.push([isoTime(f.start), f.end === null ? '' : isoTime(f.end), f.end === null ? '' : f.end - f.start,
      f.activeEnd === null ? '' : isoTime(f.activeEnd), protoName(f.proto),
      f.src, f.sport, f.dst, f.dport, natKind(f), f.natSrc, f.natSport, f.natDst, f.natDport, f.origPackets, f.origBytes,
      f.replyPackets, f.replyBytes, stateName(f), f.mark, f.zone, f.ctId, flagList(f.flags).join(' '), ns.get(f.ns) ?? '',
      ...(procs ? [procs[i] === '-' ? '' : procs[i]] : [])].map(csvCell).join(','));
  }
  return out.join('\n') + '\n';
}

/** `ns`: the namespaces' names; a NETNS column when a row is of another namespace than the daemon's */
export function topTable(rows: TopRow[], key: string, ns = new Map<number, string>()): string {
  const withNs = rows.some((r) => (ns.get(r.ns ?? 0) ?? '') !== '');
  return alignedTable([key.toUpperCase(), ...(withNs ? ['NETNS'] : []), 'FLOWS', 'BYTES', 'PACKETS'],
    rows.map((r) => [r.key, ...(withNs ? [ns.get(r.ns ?? 0) || '-'] : []), String(r.flows), String(r.bytes), String(r.packets)]));
}

export function topCsv(rows: TopRow[], key: string, ns = new Map<number, string>()): string {
  const withNs = rows.some((r) => (ns.get(r.ns ?? 0) ?? '') !== '');
  return [`${key},${withNs ? 'netns,' : ''}flows,bytes,packets`,
    ...rows.map((r) => [r.key, ...(withNs ? [ns.get(r.ns ?? 0) ?? ''] : []), r.flows, r.bytes, r.packets].map(csvCell).join(','))].join('\n') + '\n';
}

/** --top --json: each row with its namespace's name (hosts and pairs) */
export function topJson(rows: TopRow[], ns = new Map<number, string>()): Array<Record<string, unknown>> {
  return rows.map(({ ns: id, ...r }) => (id === undefined ? r : { key: r.key, netns: ns.get(id) ?? '', flows: r.flows, bytes: r.bytes, packets: r.packets }));
}
