// `conntrail flows`: search the flow history.
import { Command, Option } from 'commander';
import { ALL_SIDES, type FlowSearch, type Side, type TopKey } from '../store/sql.js';
import type { Cidr } from '../util/ip.js';
import { cidrList, intOpt, portList, protoList, searchWindow } from './search-options.js';
import { UsageError } from '../util/errors.js';
import { collect, list } from './options.js';
import { addStoreOptions, namespaceIds, openReader, query, type StoreCliOptions } from './store-open.js';
import { flowJson, flowsCsv, flowsTable, hostPort, topCsv, topJson, topTable } from './flowfmt.js';
import { packetJson, packetsTable } from './packetfmt.js';
import { holdersJson, holdersText, type HeldBy } from './tcpstatefmt.js';
import { holderExtent } from '../store/tcpstates.js';
import type { FlowReader, StoredFlow } from '../store/store.js';
import { FLOW_PACKETS_LIMIT, type StoredPacket } from '../store/packets.js';
import { isoTime } from '../util/time.js';

/**
 * Bounds of the options (in --help). Every --host value is tested on four
 * sides, every --port on up to four, in one OR each: SQLite takes an
 * expression at most 1000 deep, so 256 hosts would already be too many.
 */
export const MAX_HOSTS = 200;
export const MAX_PORTS = 200;
export const MAX_LIMIT = 1_000_000_000;
export const MAX_BYTES = Number.MAX_SAFE_INTEGER;

interface FlowsOptions extends StoreCliOptions {
  host?: string[]; src?: string[]; dst?: string[]; port?: string[]; proto?: string[]; nat?: string[]; netns?: string[];
  since?: string; until?: string; minBytes?: string; limit: string; top?: TopKey; by: 'bytes' | 'flows'; json?: boolean; csv?: boolean;
  packets?: boolean;
  process?: boolean;
}

export function flowsCommand(): Command {
  return addStoreOptions(new Command('flows')
    .description('search the flow history: by host or CIDR, port, protocol, NAT kind, time, size; or the top hosts, ports and pairs')
    .option('--host <cidr>', `an address or CIDR on any side: original source or destination, public or inside (repeatable: any of them; --host, --src and --dst take at most ${MAX_HOSTS} values in all)`, collect)
    .option('--src <cidr>', 'original source (who opened the flow) in this address or CIDR (repeatable)', collect)
    .option('--dst <cidr>', 'original destination in this address or CIDR (repeatable)', collect)
    .option('--port <port>', `this port on any side, 0-65535 (repeatable, at most ${MAX_PORTS})`, collect)
    .option('-p, --proto <proto>', 'only these protocols: names or numbers (repeatable, comma-separated)', collect)
    .option('--nat <kind>', 'NAT kind: none, snat, dnat, both (repeatable, comma-separated)', collect)
    .option('--netns <name>', 'only flows of this network namespace, as the daemon\'s sources name it ("" for the daemon\'s own; repeatable)', collect)
    .option('--since <time>', 'flows that may have existed at or after the start of this time (ISO 8601, @EPOCH, "now", "-1d"); default: all')
    .option('--until <time>', 'flows that may have existed up to the end of this time ("2026-11-23": that whole day); default: now')
    .option('--min-bytes <n>', `flows of at least this many bytes (both directions), 0 to ${MAX_BYTES}`)
    .option('--limit <n>', `at most this many flows, the newest, 0 to ${MAX_LIMIT} (0: all)`, '100')
    .addOption(new Option('--top <what>', 'instead of flows: the top hosts (by original source), ports (destination) or pairs').choices(['hosts', 'ports', 'pairs']))
    .addOption(new Option('--by <what>', 'order --top by').choices(['bytes', 'flows']).default('bytes'))
    .option('--json', 'JSON output (one array)')
    .option('--csv', 'CSV output with a header line')
    .option('--packets', 'with each flow, the packets NFLOG sources logged for it (matched by protocol, endpoints before or after NAT, namespace and time; table and JSON output)')
    .option('--process', 'with each TCP flow, the process that held its socket on this host, from the changes a tcpstates source stored (connect, or close/shutdown for a connection it accepted)'))
    .addHelpText('after', '\nFlows are listed oldest first; a flow still open shows "open" as its end.')
    .action(async (o: FlowsOptions) => {
      if (o.json && o.csv) throw new UsageError('--json and --csv: choose one');
      if (o.packets && (o.csv || o.top)) throw new UsageError(`--packets: not with ${o.csv ? '--csv' : '--top'} (table or JSON output of flows)`);
      if (o.process && o.top) throw new UsageError('--process: not with --top (a list of flows)');
      const { since, until } = searchWindow(o);
      // repeated values once each: they only make the query longer
      const nat = [...new Set(list(o.nat, '--nat').map((n) => {
        if (!['none', 'snat', 'dnat', 'both'].includes(n)) throw new UsageError(`--nat: "${n}" is not one of none, snat, dnat, both`);
        return n as FlowSearch['nat'][number];
      }))];
      const ports = portList(o.port, '--port', MAX_PORTS);
      const nHosts = list(o.host).length + list(o.src).length + list(o.dst).length;
      if (nHosts > MAX_HOSTS) throw new UsageError(`--host, --src, --dst: ${nHosts} values, at most ${MAX_HOSTS} in all (use CIDRs)`);
      // --host: any side; --src/--dst: one side each (combined: either)
      const hosts = cidrList(o.host, '--host');
      const srcs = cidrList(o.src, '--src');
      const dsts = cidrList(o.dst, '--dst');
      if (hosts.length && (srcs.length || dsts.length)) throw new UsageError('--host cannot be combined with --src or --dst');
      let sel: { hosts: Cidr[]; sides: Side[] }[] = [];
      if (hosts.length) sel = [{ hosts, sides: ALL_SIDES }];
      else {
        if (srcs.length) sel.push({ hosts: srcs, sides: ['src'] });
        if (dsts.length) sel.push({ hosts: dsts, sides: ['dst'] });
      }
      const limit = intOpt(o.limit, '--limit', MAX_LIMIT)!;
      const base: FlowSearch = {
        window: { since, until }, hosts: [], sides: ALL_SIDES, ports, protos: protoList(o.proto),
        nat, minBytes: intOpt(o.minBytes, '--min-bytes', MAX_BYTES), limit: limit === 0 ? undefined : limit,
      };
      const store = await openReader(o);
      await query(store, 'flows', async () => {
        // --src and --dst together: both must hold (the first one seeks the index)
        const ns = await store.namespaces();
        const nsIds = o.netns ? namespaceIds(ns, o.netns) : undefined;
        const inodes = await store.namespaceInodes();
        const s: FlowSearch = { ...(sel.length ? { ...base, ...sel[0], also: sel.slice(1) } : base), nsIds };
        if (o.top) {
          const rows = await store.top(s, o.top, o.by, limit || 1000000);
          process.stdout.write(o.json ? JSON.stringify(topJson(rows, ns), null, 2) + '\n' : o.csv ? topCsv(rows, o.top, ns) : topTable(rows, o.top, ns));
          return;
        }
        const flows = await store.search(s);
        flows.reverse(); // oldest first
        const holders = o.process ? await flowHolders(store, flows) : undefined;
        const procs = holders?.map(holdersText);
        const withProcess = (f: StoredFlow, i: number) => (holders ? { ...flowJson(f, ns, inodes), ...holdersJson(holders[i]) } : flowJson(f, ns, inodes));
        if (o.packets) {
          const pk: StoredPacket[][] = [];
          for (const f of flows) pk.push(await store.flowPackets(f));
          if (o.json) {
            process.stdout.write(JSON.stringify(flows.map((f, i) => ({ ...withProcess(f, i), logged_packets: pk[i].map((p) => packetJson(p, ns)) })), null, 2) + '\n');
            return;
          }
          let out = flowsTable(flows, procs);
          flows.forEach((f, i) => {
            if (!pk[i].length) return;
            out += `\npackets logged for flow ${i + 1} (${isoTime(f.start)} ${hostPort(f.src, f.sport, f.proto)} -> ${hostPort(f.dst, f.dport, f.proto)}): ${pk[i].length}` +
              `${pk[i].length >= FLOW_PACKETS_LIMIT ? ` (the first ${FLOW_PACKETS_LIMIT})` : ''}\n` + packetsTable(pk[i], '  ');
          });
          process.stdout.write(out);
          return;
        }
        process.stdout.write(o.json ? JSON.stringify(flows.map(withProcess), null, 2) + '\n' : o.csv ? flowsCsv(flows, ns, procs) : flowsTable(flows, procs));
      });
    });
}

/**
 * Each flow's holders (flows --process, who --process), and whether the
 * trail of TCP state changes has a gap within the flow's extent (changes
 * were lost: a holder may be missing). A store of an older schema has none
 * to give.
 */
export async function flowHolders(store: FlowReader, flows: StoredFlow[]): Promise<HeldBy[]> {
  const out: HeldBy[] = [];
  const now = Date.now() * 1000;
  try {
    const extents = flows.map((f) => holderExtent(f, now));
    let lo = Infinity;
    let hi = -Infinity;
    flows.forEach((f, i) => {
      if (f.proto !== 6) return;
      lo = Math.min(lo, extents[i].lo);
      hi = Math.max(hi, extents[i].hi);
    });
    const gaps = lo <= hi ? await store.gaps(lo, hi, 'tcpstates') : [];
    for (const [i, f] of flows.entries()) {
      const x = extents[i];
      const h = await store.flowHolders(f);
      out.push({
        holders: h.holders, sockets: h.sockets, unnamed: h.unnamed,
        incomplete: h.truncated || (f.proto === 6 && gaps.some((g) => (g.ns < 0 || g.ns === f.ns) && g.until >= x.lo && g.since <= x.hi)),
      });
    }
  } catch (e) {
    throw noTcpStates(e, '--process: ');
  }
  return out;
}

/** A store of schema 4 or older (read as it is) has no tcp_states table: said so, in one line. */
export function noTcpStates(e: unknown, what = ''): unknown {
  if (/no such table: tcp_states|relation "tcp_states" does not exist/.test((e as Error).message)) {
    return new Error(`${what}this store holds no TCP state changes yet (an older schema: the daemon of this version adds them when it starts)`);
  }
  return e;
}
