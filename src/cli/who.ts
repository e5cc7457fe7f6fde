// `conntrail who ADDR[:PORT] --at TIME`: which inside host was behind a
// public address and port (SNAT / masquerade), or which inside server
// answered on it (DNAT / port forward), at that time.
//
// The question means the time as precisely as it was written: "14:05:09"
// is that whole second, "14:05:09.250" that millisecond (--skew widens it
// for a clock that is off). A flow counts only while it was *active*
// (carrying packets): a TCP connection until both sides finished, anything
// else until its last packet as far as the kernel tells; a flow merely
// lingering in the table (TIME_WAIT, a UDP timeout running out) is shown
// apart and never decides. Estimated starts and ends widen a flow's
// interval, so uncertainty gives "ambiguous", never a wrong "exact".
import { Command } from 'commander';
import { natKind } from '../records/flow.js';
import type { Gap, Run, StoredFlow } from '../store/store.js';
import { WHO_LIMIT, type AddrPort } from '../store/sql.js';
import { parseIp } from '../util/ip.js';
import { isoTime, parseDurationMicros, parseTimeInterval, type TimeInterval } from '../util/time.js';
import { UsageError } from '../util/errors.js';
import { collect, parseProto } from './options.js';
import type { StoredPacket } from '../store/packets.js';
import { packetJson, packetsTable } from './packetfmt.js';
import { holdersJson, holdersText, NOT_HELD, type HeldBy } from './tcpstatefmt.js';
import { flowHolders } from './flows.js';
import { addStoreOptions, namespaceIds, openReader, query, type StoreCliOptions } from './store-open.js';
import { alignedTable, flagList, flowJson, hostPort, protoName, sides } from './flowfmt.js';

/** "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]:80" */
export function parseAddrPort(text: string, opt: string): AddrPort {
  let addr = text;
  let port: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text);
  if (v6) { addr = v6[1]; port = v6[2]; } else if (/^[^:]+:\d{1,5}$/.test(text)) { [addr, port] = text.split(':'); }
  const bytes = parseIp(addr);
  if (!bytes) throw new UsageError(`${opt}: "${text}" is not ADDRESS[:PORT] (e.g. 198.51.100.7:40001 or [2001:db8::1]:443)`);
  if (port !== undefined && (Number(port) > 65535)) throw new UsageError(`${opt}: "${text}": port must be 0-65535`);
  return { addr, port: port === undefined ? undefined : Number(port) };
}

export type Verdict = 'exact' | 'incomplete' | 'ambiguous' | 'nearest' | 'none';

/** A flow's interval of possible activity (µs, both ends included; Infinity: open and active). */
export function activeInterval(f: StoredFlow): { lo: number; hi: number } {
  return { lo: f.start - f.startErr, hi: f.activeEnd ?? f.end ?? Infinity };
}

/** A flow's interval of possible existence in the table. */
function existInterval(f: StoredFlow): { lo: number; hi: number } {
  return { lo: f.start - f.startErr, hi: f.end ?? Infinity };
}

const touches = (iv: { lo: number; hi: number }, q: TimeInterval) => iv.lo < q.hi && iv.hi >= q.lo;

export interface WhoAnswer {
  verdict: Verdict;
  /** the inside hosts (addresses) the answer names, one per host (the same address twice: two namespaces) */
  inside: string[];
  /** the same hosts, each with its namespace ('' : the daemon's own) */
  /** `ns`: the store's id of the namespace */
  hosts: Array<{ addr: string; netns: string; ns: number }>;
  /** the flows the verdict rests on: those possibly active in the interval (exact,
   * incomplete, ambiguous), else the nearest active ones (nearest) */
  flows: StoredFlow[];
  /** flows that existed in the interval but were no longer (or not yet known to be) active */
  lingering: StoredFlow[];
  /** times in the interval the trail does not cover: flows of then may be missing */
  gaps: Gap[];
}

/**
 * The inside host of a flow found by its public address `pub`: the inside
 * server of a port forward (the flow's destination was `pub` and was
 * translated), else the source that was translated to `pub`. A flow with
 * both translations (a port forward the router also masquerades) is found
 * by its destination.
 */
export function insideAddr(f: StoredFlow, pub?: string): string {
  const kind = natKind(f);
  if (kind === 'dnat') return f.natDst!;
  if (kind === 'both' && f.natDst !== null && (pub === undefined || sameAddr(f.dst, pub))) return f.natDst;
  return f.src;
}

function sameAddr(a: string, b: string): boolean {
  if (a === b) return true;
  const x = parseIp(a);
  const y = parseIp(b);
  return x !== undefined && y !== undefined && x.length === y.length && x.every((v, i) => v === y[i]);
}

/**
 * The verdict over the flows of the window for the interval `q` (µs, `hi`
 * excluded): exact when exactly one inside host may have been active then
 * and the trail covers it; incomplete when so but the trail has a gap then;
 * ambiguous when several may have been; nearest (the closest active flows,
 * nearest first) or none otherwise.
 */
export function judge(flows: StoredFlow[], q: TimeInterval, gaps: Gap[] = [], pub?: string, nsName?: (ns: number) => string): WhoAnswer {
  // a host is an address in a namespace: 10.0.0.5 of one router is not 10.0.0.5 of another
  const hostsOf = (list: StoredFlow[]) => {
    const m = new Map<string, { addr: string; netns: string; ns: number }>();
    for (const f of list) {
      const h = { addr: insideAddr(f, pub), netns: nsName?.(f.ns) ?? '', ns: f.ns };
      const k = `${f.ns}\0${h.addr}`;
      if (!m.has(k)) m.set(k, h);
    }
    const hosts = [...m.values()];
    return { hosts, inside: hosts.map((h) => h.addr) };
  };
  const active: StoredFlow[] = [];
  const lingering: StoredFlow[] = [];
  for (const f of flows) {
    if (touches(activeInterval(f), q)) active.push(f);
    else if (touches(existInterval(f), q)) lingering.push(f);
  }
  active.sort((a, b) => a.start - b.start);
  if (active.length) {
    const h = hostsOf(active);
    const verdict: Verdict = h.hosts.length > 1 ? 'ambiguous' : gaps.length ? 'incomplete' : 'exact';
    return { verdict, ...h, flows: active, lingering, gaps };
  }
  const dist = (f: StoredFlow) => {
    const iv = activeInterval(f);
    return iv.lo >= q.hi ? iv.lo - q.hi : q.lo - iv.hi;
  };
  const near = [...flows].sort((a, b) => dist(a) - dist(b) || a.start - b.start);
  if (!near.length) return { verdict: 'none', inside: [], hosts: [], flows: [], lingering, gaps };
  return { verdict: 'nearest', ...hostsOf(near), flows: near, lingering, gaps };
}

/**
 * The parts of `q` the daemon's runs do not cover (it was not running, or
 * the store holds nothing from before), and the store's loss records.
 * A run not known to have stopped covers until it was last seen alive,
 * and up to now if that was recent (it is running).
 */
export function coverageGaps(runs: Run[], lost: Gap[], q: TimeInterval, nowUs: number, aliveSlackUs = 15_000_000): Gap[] {
  const covered = runs.map((r) => ({
    lo: r.started,
    hi: r.stopped ?? (nowUs - r.alive <= aliveSlackUs ? nowUs + 1 : r.alive),
  })).sort((a, b) => a.lo - b.lo);
  const first = covered.length ? covered[0].lo : Infinity;
  const why = (at: number) => (at < first ? 'before the trail begins (the daemon had not yet run with this store)' : 'the daemon was not running');
  const out: Gap[] = [];
  let t = q.lo;
  for (const c of covered) {
    if (t >= q.hi) break;
    if (c.hi <= t) continue;
    if (c.lo > t) out.push({ ns: -1, since: t, until: Math.min(c.lo, q.hi), reason: why(t) });
    t = Math.max(t, c.hi);
  }
  if (t < q.hi) out.push({ ns: -1, since: t, until: q.hi, reason: why(t) });
  for (const g of lost) if (g.since < q.hi && g.until >= q.lo) out.push(g);
  return out;
}

interface WhoOptions extends StoreCliOptions { at?: string; skew?: string; proto?: string; remote?: string; window: string; json?: boolean; packets?: boolean; process?: boolean; netns?: string[] }

/** how long an interval is, in words */
function spanText(us: number): string {
  if (us === 1) return 'that microsecond';
  if (us === 1000) return 'that millisecond';
  if (us === 1e6) return 'that whole second';
  if (us === 6e7) return 'that whole minute';
  if (us >= 8.64e10 - 3.6e9 && us <= 8.64e10 + 3.6e9) return 'that whole day';
  return `${us / 1e6} s`;
}

function intervalText(q: TimeInterval): string {
  return q.hi - q.lo === 1 ? isoTime(q.lo) : `${isoTime(q.lo)} to ${isoTime(q.hi)}`;
}

export function whoCommand(): Command {
  return addStoreOptions(new Command('who')
    .description('which inside host was behind a public ADDRESS[:PORT] (SNAT, masquerade), or which inside server answered on it (DNAT), at a time')
    .argument('<address[:port]>', 'the public address and port, e.g. 198.51.100.7:40001 or [2001:db8::1]:443')
    .option('--at <time>', 'the time, meant as precisely as written: ISO 8601 ("2026-11-23T14:05:09Z" is that second, "…:09.250Z" that millisecond, "2026-11-23 14:05:09" local time), @EPOCH[.FRACTION], "now", "-10m"', 'now')
    .option('--skew <duration>', 'widen the time by this much on each side, for a clock that is off ("2s", "500ms")', '0s')
    .option('--proto <proto>', 'only this protocol (tcp, udp, ... or a number)')
    .option('--remote <address[:port]>', 'only flows with this remote peer (the outside host the flow went to or came from)')
    .option('--window <duration>', 'when no flow was active then, look this far before and after for the nearest ones ("30s", "5m")', '1m')
    .option('--netns <name>', 'only flows of this network namespace, as the daemon\'s sources name it (repeatable; default: every namespace, and each host is named with its namespace)', collect)
    .option('--json', 'print the answer as JSON')
    .option('--packets', 'with each flow, the packets NFLOG sources logged for it (see conntrail flows --packets)')
    .option('--process', 'with each TCP flow, the process that held its socket on this host (see conntrail flows --process)'))
    .addHelpText('after', `
Verdicts: exact (one inside host was active on the address then),
incomplete (one was, but the trail has a gap then: the daemon was not
running or events were lost, so another may be missing), ambiguous (several
inside hosts may have been active then: all are listed with their active
times; narrow it with --remote, --proto or a more precise --at), nearest (none
was active then: the nearest within the window), none.
A flow is active while it carries packets: TCP until both sides have
finished, others until their last packet as the kernel tells; flows still
in the table but no longer active then (TIME_WAIT, a UDP timeout running
out) are listed apart and never decide.
Exit status: 0 with an answer, 1 when no flow matches.`)
    .action(async (target: string, o: WhoOptions) => {
      const pub = parseAddrPort(target, 'ADDRESS[:PORT]');
      let q: TimeInterval;
      let window: number;
      let skew: number;
      const nowUs = Date.now() * 1000;
      try { q = parseTimeInterval(o.at ?? 'now', nowUs); } catch (e) { throw new UsageError(`--at: ${(e as Error).message}`); }
      try { window = parseDurationMicros(o.window); } catch (e) { throw new UsageError(`--window: ${(e as Error).message}`); }
      try { skew = parseDurationMicros(o.skew ?? '0s'); } catch (e) { throw new UsageError(`--skew: ${(e as Error).message}`); }
      const asked = q;
      q = { lo: q.lo - skew, hi: q.hi + skew };
      const proto = o.proto === undefined ? undefined : parseProto(o.proto, '--proto');
      const remote = o.remote === undefined ? undefined : parseAddrPort(o.remote, '--remote');
      const store = await openReader(o);
      const logged = new Map<StoredFlow, StoredPacket[]>();
      const held = new Map<StoredFlow, HeldBy>();
      let inodes = new Map<number, number>();
      const [ans, ns] = await query(store, 'who', async () => {
        const names = await store.namespaces();
        inodes = await store.namespaceInodes();
        const nsIds = o.netns ? namespaceIds(names, o.netns) : undefined;
        const [flows, runs, lost] = [
          await store.who(pub, { since: q.lo - window, until: q.hi + window }, proto, remote, nsIds),
          await store.runs(), await store.gaps(q.lo, q.hi),
        ] as const;
        // with --netns, a loss in another namespace does not make this answer incomplete
        const gaps = coverageGaps(runs, nsIds ? lost.filter((g) => g.ns < 0 || nsIds.includes(g.ns)) : lost, q, nowUs);
        // more flows than it reads: those that began after the last it read are not judged
        if (flows.length >= WHO_LIMIT && flows[flows.length - 1].start < q.hi) {
          gaps.push({ ns: -1, since: Math.max(q.lo, flows[flows.length - 1].start), until: q.hi, reason: `more than ${WHO_LIMIT} flows used it within the window: the later ones were not read (narrow with a port, --remote, --proto or --window)` });
        }
        const a = judge(flows, q, gaps, pub.addr, (id) => names.get(id) ?? '');
        if (o.packets) for (const f of [...a.flows, ...a.lingering]) logged.set(f, await store.flowPackets(f));
        if (o.process) {
          const all = [...a.flows, ...a.lingering];
          (await flowHolders(store, all)).forEach((h, i) => held.set(all[i], h));
        }
        return [a, names] as const;
      });
      const what = `${hostPort(pub.addr, pub.port ?? null, 0)}${proto !== undefined ? `/${protoName(proto)}` : ''}`;
      const bySource = (f: StoredFlow) => natKind(f) === 'both' && insideAddr(f, pub.addr) === f.src;
      const withSides = (f: StoredFlow) => ({
        ...flowJson(f, ns, inodes), ...sidesJson(f, bySource(f)), ...(o.process ? holdersJson(held.get(f) ?? NOT_HELD) : {}),
        ...(o.packets ? { logged_packets: (logged.get(f) ?? []).map((p) => packetJson(p, ns)) } : {}),
      });
      if (o.json) {
        process.stdout.write(JSON.stringify({
          query: {
            address: pub.addr, port: pub.port ?? null, at: o.at ?? 'now', from: isoTime(q.lo), to: isoTime(q.hi),
            precision_us: asked.hi - asked.lo, skew_us: skew, proto: proto === undefined ? null : protoName(proto),
            remote: o.remote ?? null, window_us: window, netns: o.netns ?? null,
          },
          verdict: ans.verdict, inside: ans.inside,
          hosts: ans.hosts.map((h) => ({ addr: h.addr, netns: h.netns, ...(inodes.has(h.ns) ? { netns_inode: inodes.get(h.ns) } : {}) })), flows: ans.flows.map(withSides), lingering: ans.lingering.map(withSides),
          gaps: ans.gaps.map((g) => ({ from: isoTime(g.since), to: isoTime(g.until), reason: g.reason, netns: g.ns < 0 ? null : ns.get(g.ns) ?? '' })),
        }, null, 2) + '\n');
      } else {
        // a host of another namespace than the daemon's is named with it
        // (two namespaces of one name, one deleted and made again: told apart by their inodes)
        const shared = (h: { netns: string; ns: number }) => ans.hosts.some((x) => x.netns === h.netns && x.ns !== h.ns);
        const hostList = ans.hosts.map((h) => (h.netns || shared(h) ? `${h.addr} (netns ${h.netns}${shared(h) ? ` inode ${inodes.get(h.ns) ?? 'unknown'}` : ''})` : h.addr));
        const when = `${intervalText(q)}${asked.hi - asked.lo > 1 || skew ? ` (${spanText(asked.hi - asked.lo)}${skew ? `, ± ${skew / 1e6} s skew` : ''})` : ''}`;
        const head = ans.verdict === 'none' ? `none: no flow used ${what} within ${o.window} of ${when}`
          : ans.verdict === 'ambiguous' ? `ambiguous: ${hostList.length} different inside hosts may have been active on ${what} in ${when}: ${hostList.join(', ')} (narrow with --remote, --proto or a more precise --at)`
            : ans.verdict === 'exact' ? `exact: ${hostList[0]} was behind ${what} in ${when}`
              : ans.verdict === 'incomplete' ? `incomplete: ${hostList[0]} was behind ${what} in ${when}, but the trail has a gap then (below): another host may be missing`
                : `nearest: no inside host was active on ${what} in ${when}; the nearest: ${hostList.join(', ')}`;
        let out = head + '\n';
        // the namespace column when a flow listed is from another namespace than the daemon's
        const withNs = [...ans.flows, ...ans.lingering].some((f) => (ns.get(f.ns) ?? '') !== '');
        const table = (list: StoredFlow[]) => alignedTable(['START', 'END', 'ACTIVE UNTIL', 'PROTO', 'NAT', 'INSIDE', 'PUBLIC', 'REMOTE', 'FLAGS', ...(withNs ? ['NETNS'] : []), ...(o.process ? ['PROCESS'] : [])], list.map((f) => {
          const s = sides(f, bySource(f));
          const startText = f.startErr ? (f.startErr >= Number.MAX_SAFE_INTEGER ? `≤ ${isoTime(f.start)}` : `${isoTime(f.start)} (-${f.startErr / 1e6} s)`) : isoTime(f.start);
          const endText = f.end === null ? 'open' : f.endErr ? `${isoTime(f.end)} (-${f.endErr / 1e6} s)` : isoTime(f.end);
          const act = f.activeEnd === null ? (f.end === null ? 'open' : isoTime(f.end)) : isoTime(f.activeEnd);
          return [startText, endText, act, protoName(f.proto), natKind(f), s.inside, s.public ?? '-', s.remote, flagList(f.flags).join(',') || '-',
            ...(withNs ? [ns.get(f.ns) || '-'] : []), ...(o.process ? [holdersText(held.get(f) ?? NOT_HELD)] : [])];
        }));
        const packetsOf = (list: StoredFlow[]) => list.map((f, i) => {
          const ps = logged.get(f) ?? [];
          return ps.length ? `\npackets logged for flow ${i + 1}: ${ps.length}\n${packetsTable(ps, '  ')}` : '';
        }).join('');
        if (ans.flows.length) out += '\n' + table(ans.flows) + packetsOf(ans.flows);
        if (ans.lingering.length) out += `\nin the table then but no longer active (not counted):\n${table(ans.lingering)}${packetsOf(ans.lingering)}`;
        for (const g of ans.gaps) out += `\ngap: ${isoTime(g.since)} to ${isoTime(g.until)}: ${g.reason}${g.ns >= 0 && ns.get(g.ns) ? ` (network namespace ${ns.get(g.ns)})` : ''}`;
        if (ans.gaps.length) out += '\n';
        process.stdout.write(out);
      }
      if (ans.verdict === 'none') process.exitCode = 1;
    });
}

function sidesJson(f: StoredFlow, bySource: boolean): Record<string, unknown> {
  const s = sides(f, bySource);
  return { inside: s.inside, public: s.public, remote: s.remote };
}
