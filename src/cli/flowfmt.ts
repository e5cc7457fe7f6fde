// Printing stored flows: an aligned table for a terminal, JSON, or CSV.
import { natKind } from '../records/flow.js';
import { flagList, flowJson, protoName, stateName } from '../formats/flow.js';
import type { StoredFlow, TopRow } from '../store/store.js';
import { isoTime } from '../util/time.js';

export { flagList, flowJson, protoName };

export function hostPort(addr: string | null, port: number | null, proto: number): string {
  if (addr === null) return '-';
  const a = addr.includes(':') ? `[${addr}]` : addr;
  if (port === null || proto === 1 || proto === 58) return a;
  return `${a}:${port}`;
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
