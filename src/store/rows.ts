// Reading rows back, the same for both stores: addresses to text, a row to
// a StoredFlow, a --top row; and the clamp of a wide search to the minutes
// the store holds.
import { PROTO_NAMES } from '../records/values.js';
import { ipv6ToString } from '../util/ip.js';
import type { FlowSearch, TopKey } from './sql.js';
import type { FlowReader, OpenRow, StoredFlow, TopRow } from './store.js';
import type { PacketTopKey, PacketTopRow } from './packets.js';

/** A stored address as text: SQLite's integer or blob, PostgreSQL's inet text. */
export function addrText(v: unknown): string {
  if (typeof v === 'number') return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  if (v instanceof Uint8Array) return v.length === 4 ? addrText(((v[0] << 24) | (v[1] << 16) | (v[2] << 8) | v[3]) >>> 0) : ipv6ToString(v, 0);
  return String(v);
}

/** A stored address that may be NULL, as text or null. */
export const addrOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : addrText(v));
/** a column's number, or null (PostgreSQL's bigint comes as text) */
export const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** A row of any of the flow tables, as read back. */
export function rowToFlow(x: Record<string, unknown>): StoredFlow {
  const n = numOrNull;
  const a = (v: unknown) => (v === null || v === undefined ? null : addrText(v));
  const start = Number(x.start);
  return {
    start, startErr: Number(x.serr ?? 0),
    end: x.dur === null || x.dur === undefined ? null : start + Number(x.dur), endErr: Number(x.eerr ?? 0),
    activeEnd: x.adur === null || x.adur === undefined ? null : start + Number(x.adur),
    proto: Number(x.proto),
    src: addrText(x.src), sport: n(x.sport), dst: addrText(x.dst), dport: n(x.dport),
    natSrc: a(x.nat_src), natSport: n(x.nat_sport), natDst: a(x.nat_dst), natDport: n(x.nat_dport),
    origPackets: n(x.opkts), origBytes: n(x.obytes), replyPackets: n(x.rpkts), replyBytes: n(x.rbytes),
    state: n(x.state), mark: Number(x.mark ?? 0), zone: Number(x.zone ?? 0), status: Number(x.status ?? 0),
    ctId: Number(x.ct_id ?? 0), flags: Number(x.flags ?? 0), ns: Number(x.ns ?? 0),
  };
}

/** A row of the current table, as the flow table continues it. */
export function rowToOpen(x: Record<string, unknown>): OpenRow {
  const f = rowToFlow(x);
  return {
    key: Number(x.k), start: f.start, startErr: f.startErr, flags: f.flags, activeEnd: f.activeEnd, status: f.status,
    proto: f.proto, src: f.src, sport: f.sport, dst: f.dst, dport: f.dport, zone: f.zone, ctId: f.ctId, ns: f.ns,
  };
}

/** A row of a --top query. */
export function topRow(key: TopKey, x: Record<string, unknown>): TopRow {
  return {
    key: key === 'hosts' ? addrText(x.src) : key === 'ports' ? `${x.dport ?? '-'}/${PROTO_NAMES[Number(x.proto)] ?? x.proto}` : `${addrText(x.src)} ${addrText(x.dst)}`,
    ...(x.ns !== undefined ? { ns: Number(x.ns) } : {}),
    flows: Number(x.flows), bytes: Number(x.bytes), packets: Number(x.packets),
  };
}

/** A row of a packet --top query. */
export function packetTopRow(key: PacketTopKey, x: Record<string, unknown>): PacketTopRow {
  const a = (v: unknown) => addrOrNull(v) ?? '-';
  return {
    key: key === 'hosts' ? a(x.src) : key === 'ports' ? `${x.dport ?? '-'}/${x.proto === null ? '-' : PROTO_NAMES[Number(x.proto)] ?? x.proto}`
      : key === 'pairs' ? `${a(x.src)} ${a(x.dst)}` : JSON.stringify(String(x.prefix)),
    packets: Number(x.packets), bytes: Number(x.bytes),
  };
}

/** A search over a wide window visits only the minutes that hold flows. */
export async function clampToStore<S extends Pick<FlowSearch, 'window'>>(s: S, store: Pick<FlowReader, 'bounds'>): Promise<S> {
  if (s.window.bounds) return s;
  return { ...s, window: { ...s.window, bounds: (await store.bounds()) ?? { lo: 1, hi: 0 } } };
}
