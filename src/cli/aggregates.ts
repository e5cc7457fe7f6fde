// conntrail aggregates: the aggregated flow records the daemon stored (an
// `[[aggregate]]` stage with store = true), oldest first, as an aligned
// table, JSON (the objects of the JSON line sinks write) or CSV.
import { Command } from 'commander';
import { UsageError } from '../util/errors.js';
import { isoTime } from '../util/time.js';
import { AGGREGATE_KEYS, type AggregateRecord } from '../records/aggregate.js';
import { aggregateJson } from '../formats/aggregate.js';
import { addStoreOptions, openReader, query, type StoreCliOptions } from './store-open.js';
import { cidrList, intOpt, portList, protoList, searchWindow } from './search-options.js';
import { MAX_HOSTS, MAX_LIMIT, MAX_PORTS } from './flows.js';
import { collect, list } from './options.js';
import { alignedTable, csvCell } from './flowfmt.js';

interface AggregatesCliOptions extends StoreCliOptions {
  name?: string[]; since?: string; until?: string; host?: string[]; port?: string[]; proto?: string[]; limit: string; json?: boolean; csv?: boolean;
}

export function aggregatesCommand(): Command {
  return addStoreOptions(new Command('aggregates')
    .description('search the aggregated flow records the daemon stored ([[aggregate]] stages with store = true), oldest first')
    .option('--name <stage>', 'only the records of these stages (repeatable, comma-separated)', collect)
    .option('--since <time>', 'records whose interval ends after the start of this time (ISO 8601, @EPOCH, "now", "-1h"); default: all')
    .option('--until <time>', 'records whose interval begins by the end of this time; default: now')
    .option('--host <cidr>', 'an address key (source or destination, before or after NAT) in this address or CIDR; a network key matches by its address (repeatable)', collect)
    .option('--port <port>', `a port key equal to this port (repeatable, at most ${MAX_PORTS})`, collect)
    .option('-p, --proto <proto>', 'only these protocols, names or numbers (repeatable, comma-separated)', collect)
    .option('--limit <n>', `at most this many records, the newest, 0 to ${MAX_LIMIT} (0: all)`, '100')
    .option('--json', 'JSON output (one array of the objects the JSON line sinks write)')
    .option('--csv', 'CSV output'), true)
    .addHelpText('after', `
Each record is what the flows that ended in one interval and shared the stage's
keys did together: their count, the sums of both directions' packets and bytes,
the earliest start and the latest end. Columns a stage does not fold by are "-"
(null in JSON); an address cut to a prefix is its network (10.0.1.0/24).`)
    .action((o: AggregatesCliOptions) => searchAggregates(o));
}

async function searchAggregates(o: AggregatesCliOptions): Promise<void> {
  if (o.json && o.csv) throw new UsageError('--json and --csv: choose one');
  const { since, until } = searchWindow(o);
  const hosts = cidrList(o.host, '--host');
  if (hosts.length > MAX_HOSTS) throw new UsageError(`--host: ${hosts.length} values, at most ${MAX_HOSTS} (use CIDRs)`);
  const limit = intOpt(o.limit, '--limit', MAX_LIMIT)!;
  const protos = protoList(o.proto);
  const ports = portList(o.port, '--port', MAX_PORTS);
  const store = await openReader(o);
  await query(store, 'aggregates', async () => {
    const rows = await store.aggregates({ since, until, names: list(o.name, '--name'), hosts, ports, protos, limit: limit === 0 ? undefined : limit });
    rows.reverse(); // oldest first
    process.stdout.write(o.json ? JSON.stringify(rows.map(aggregateJson), null, 2) + '\n' : o.csv ? aggregatesCsv(rows) : aggregatesTable(rows));
  });
}

const KEY_HEAD: Record<(typeof AGGREGATE_KEYS)[number], string> = {
  src: 'SRC', dst: 'DST', sport: 'SPORT', dport: 'DPORT', proto: 'PROTO', nat_src: 'NAT_SRC', nat_sport: 'NAT_SPORT', nat_dst: 'NAT_DST', nat_dport: 'NAT_DPORT',
};

export function aggregatesTable(rows: AggregateRecord[]): string {
  const objs = rows.map(aggregateJson);
  // the columns of the keys any of the rows folds by, in the stage keys' order
  const keys = AGGREGATE_KEYS.filter((k) => objs.some((j) => j[k] !== null));
  return alignedTable(['INTERVAL', 'SECONDS', 'NAME', ...keys.map((k) => KEY_HEAD[k]), 'FLOWS', 'PKTS', 'BYTES', 'RPKTS', 'RBYTES', 'FIRST', 'LAST'],
    rows.map((r, i) => [isoTime(r.intervalStart), String(r.intervalUs / 1e6), r.aggregate, ...keys.map((k) => (objs[i][k] === null ? '-' : String(objs[i][k]))),
      String(r.flows), String(r.origPackets), String(r.origBytes), String(r.replyPackets), String(r.replyBytes), isoTime(r.first), isoTime(r.last)]));
}

const CSV_HEAD = ['interval_start', 'interval_start_us', 'interval_s', 'aggregate', 'family', 'proto', 'src', 'sport', 'dst', 'dport', 'nat_src', 'nat_sport',
  'nat_dst', 'nat_dport', 'flows', 'orig_packets', 'orig_bytes', 'reply_packets', 'reply_bytes', 'first', 'first_us', 'last', 'last_us'];

export function aggregatesCsv(rows: AggregateRecord[]): string {
  const out = [CSV_HEAD.join(',')];
  for (const r of rows) {
    const j = aggregateJson(r);
    out.push([j.interval_start, r.intervalStart, j.interval_s, r.aggregate, j.family, j.proto, j.src, j.sport, j.dst, j.dport,
      j.nat_src, j.nat_sport, j.nat_dst, j.nat_dport, r.flows, r.origPackets, r.origBytes, r.replyPackets, r.replyBytes, j.first, r.first, j.last, r.last]
      .map(csvCell).join(','));
  }
  return out.join('\n') + '\n';
}
