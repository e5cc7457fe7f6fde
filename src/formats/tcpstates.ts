// tcpstates' lines, byte for byte: libbpf-tools' (0.26, as Debian ships
// it) header and one line per change, narrow (IPv4-sized columns, comm cut
// to 10) or wide (-w: IPv6-sized, the IP version, comm to 16), with -T's
// HH:MM:SS column first; BCC's tcpstates.py for what only it has: -t (the
// seconds since the first change) and -s (CSV), and -Y's journal fields.
// The MS column is the time since the socket's previous change (0.000 for
// its first change seen).
import type { TcpStateChange } from '../records/tcpstate.js';
import { familyText, TCP_STATE_NAMES } from '../records/tcpstate.js';
import type { Fields } from './journal.js';
import { isoMicros } from '../util/time.js';
import { asciiJsonString } from '../util/json.js';

export interface TcpstatesFormatOptions {
  wide?: boolean;
  /** the -T column: local time HH:MM:SS */
  time?: boolean;
  /** the -t column: seconds since `since` (µs since the epoch: the first change shown) */
  elapsed?: boolean;
  /** -s: BCC's comma-separated values */
  csv?: boolean;
}

/** printf's %-Ns: left-justified, padded to n, never cut */
const left = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const p2 = (n: number) => (n < 10 ? '0' : '') + n;
const state = (s: number) => TCP_STATE_NAMES[s] || '(null)';

export function tcpstatesHeader(o: TcpstatesFormatOptions = {}): string {
  if (o.csv) return (o.time ? 'TIME,' : '') + (o.elapsed ? 'TIME(s),' : '') + 'SKADDR,C-PID,C-COMM,IP,LADDR,LPORT,RADDR,RPORT,OLDSTATE,NEWSTATE,MS';
  const t = (o.time ? left('TIME(s)', 8) + ' ' : '') + (o.elapsed ? left('TIME(s)', 9) + ' ' : '');
  return t + (o.wide
    ? `${left('SKADDR', 16)} ${left('PID', 7)} ${left('COMM', 16)} ${left('IP', 2)} ${left('LADDR', 26)} ${left('LPORT', 5)} ${left('RADDR', 26)} ${left('RPORT', 5)} ${left('OLDSTATE', 11)} -> ${left('NEWSTATE', 11)} MS`
    : `${left('SKADDR', 16)} ${left('PID', 7)} ${left('COMM', 10)} ${left('LADDR', 15)} ${left('LPORT', 5)} ${left('RADDR', 15)} ${left('RPORT', 5)} ${left('OLDSTATE', 11)} -> ${left('NEWSTATE', 11)} MS`);
}

/** the MS column: the µs (as the tool keeps them) in ms with three decimals */
export function spanMs(deltaNs: number | undefined): string {
  return (Math.floor((deltaNs ?? 0) / 1000) / 1000).toFixed(3);
}

/** BCC's names: the state's number where it has none */
const bccState = (s: number) => (s >= 1 && s <= 12 ? TCP_STATE_NAMES[s] : String(s));

/** `since`: for -t, when the first change shown happened (µs since the epoch) */
export function formatTcpstates(r: TcpStateChange, o: TcpstatesFormatOptions = {}, since = r.time): string {
  let s = '';
  const sep = o.csv ? ',' : ' ';
  if (o.time) {
    const d = new Date(r.time / 1000);
    s = p2(d.getHours()) + ':' + p2(d.getMinutes()) + ':' + p2(d.getSeconds()) + sep;
  }
  if (o.elapsed) {
    const t = ((r.time - since) / 1e6).toFixed(6);
    s += o.csv ? t + ',' : left(t, 9) + ' ';
  }
  const ms = spanMs(r.deltaNs);
  if (o.csv) {
    return s + r.skaddr + ',' + r.pid + ',' + r.comm + ',' + (r.family === 2 ? '4' : '6') + ',' + r.saddr + ',' + r.sport + ',' + r.daddr + ',' + r.dport + ',' +
      bccState(r.oldState) + ',' + bccState(r.newState) + ',' + ms;
  }
  if (o.wide) {
    return s + left(r.skaddr, 16) + ' ' + left(String(r.pid), 7) + ' ' + left(r.comm, 16) + ' ' + left(r.family === 2 ? '4' : '6', 2) + ' ' +
      left(r.saddr, 26) + ' ' + left(String(r.sport), 5) + ' ' + left(r.daddr, 26) + ' ' + left(String(r.dport), 5) + ' ' +
      left(state(r.oldState), 11) + ' -> ' + left(state(r.newState), 11) + ' ' + ms;
  }
  return s + left(r.skaddr, 16) + ' ' + left(String(r.pid), 7) + ' ' + left(r.comm.slice(0, 10), 10) + ' ' +
    left(r.saddr, 15) + ' ' + left(String(r.sport), 5) + ' ' + left(r.daddr, 15) + ' ' + left(String(r.dport), 5) + ' ' +
    left(state(r.oldState), 11) + ' -> ' + left(state(r.newState), 11) + ' ' + ms;
}

/**
 * BCC tcpstates -Y's journal entry for a change: SYSLOG_IDENTIFIER,
 * PRIORITY, OBJECT_PID, OBJECT_COMM (left to journald when the sender is
 * root, as tcpstates does: journald then adds the process's own OBJECT_*
 * fields), the addresses, ports, states and span, and MESSAGE
 * ("comm saddr sport → daddr dport OLD → NEW"); then conntrail's own:
 * the namespace and the socket's cookie. Values are byte strings (UTF-8 as
 * one char per byte), as encodeJournal writes them.
 */
export function tcpstateJournalFields(r: TcpStateChange, root: boolean): Fields {
  const v = r.family === 10 ? 'IPV6' : 'IPV4';
  const old = bccState(r.oldState);
  const neu = bccState(r.newState);
  const f: Fields = [
    ['MESSAGE', formatTcpstateMessage(r)],
    ['SYSLOG_IDENTIFIER', 'tcpstates'],
    ['PRIORITY', '5'],
    ['OBJECT_PID', String(r.pid)],
  ];
  if (!root) f.push(['OBJECT_COMM', r.comm]);
  f.push(
    [`OBJECT_${v}_SOURCE_ADDRESS`, r.saddr],
    ['OBJECT_TCP_SOURCE_PORT', String(r.sport)],
    [`OBJECT_${v}_DESTINATION_ADDRESS`, r.daddr],
    ['OBJECT_TCP_DESTINATION_PORT', String(r.dport)],
    ['OBJECT_TCP_OLD_STATE', old],
    ['OBJECT_TCP_NEW_STATE', neu],
    ['OBJECT_TCP_SPAN_TIME', String(Math.floor((r.deltaNs ?? 0) / 1000))],
    ['CONNTRAIL_NETNS_INODE', String(r.netnsInode)],
    ['CONNTRAIL_SOCKET_COOKIE', String(r.cookie)],
    ['CONNTRAIL_COMM', r.comm],
  );
  if (r.kthread) f.push(['CONNTRAIL_KTHREAD', '1']);
  if (r.kernelSocket) f.push(['CONNTRAIL_KERNEL_SOCKET', '1']);
  if (r.netns) f.push(['CONNTRAIL_NETNS', r.netns]);
  return f;
}

/** text with chars that are bytes (the kernel's comm) and one arrow: the arrow as its UTF-8 bytes */
function utf8Bytes(s: string): string {
  return s.replace(/\u2192/g, '\u00e2\u0086\u0092');
}

/** The -Y MESSAGE alone: "comm saddr sport → daddr dport OLD → NEW" (UTF-8 arrows as byte chars) */
export function formatTcpstateMessage(r: TcpStateChange): string {
  return utf8Bytes(`${r.comm} ${r.saddr} ${r.sport} \u2192 ${r.daddr} ${r.dport} ${bccState(r.oldState)} \u2192 ${bccState(r.newState)}`);
}

/** conntrail's JSON for a TCP state change (docs/tcpstates.md) */
export function formatTcpstateJson(r: TcpStateChange): string {
  let s = '{"time":"' + isoMicros(r.time) + '","time_us":' + r.time + ',"kind":"tcpstate"';
  if (r.netns) s += ',"netns":' + asciiJsonString(r.netns);
  s += ',"netns_inode":' + r.netnsInode + ',"pid":' + r.pid + ',"tid":' + r.tid + ',"comm":' + asciiJsonString(r.comm, true) +
    ',"family":"' + familyText(r.family) + '","saddr":"' + r.saddr + '","sport":' + r.sport + ',"daddr":"' + r.daddr + '","dport":' + r.dport +
    ',"old_state":"' + bccState(r.oldState) + '","new_state":"' + bccState(r.newState) + '"';
  if (r.deltaNs !== undefined) s += ',"span_us":' + Math.floor(r.deltaNs / 1000);
  if (r.kthread) s += ',"kthread":true';
  if (r.kernelSocket) s += ',"kernel_socket":true';
  return s + ',"skaddr":"' + r.skaddr + '","cookie":' + r.cookie + '}';
}

/** the daemon's formats of TCP state changes */
export const TCPSTATE_FORMATS = ['tcpstates', 'tcpstates-wide', 'tcpstates-csv', 'tcpstates-message', 'json'] as const;
export type TcpstateFormatName = (typeof TCPSTATE_FORMATS)[number];

export function makeTcpstateFormatter(name: TcpstateFormatName): (r: TcpStateChange) => string {
  switch (name) {
    case 'tcpstates': return (r) => formatTcpstates(r, { time: true });
    case 'tcpstates-wide': return (r) => formatTcpstates(r, { time: true, wide: true });
    case 'tcpstates-csv': return (r) => formatTcpstates(r, { time: true, csv: true });
    case 'tcpstates-message': return formatTcpstateMessage;
    case 'json': return formatTcpstateJson;
  }
}
