// The configuration docs, generated from the schema (the single source):
// docs/config.md and one page per source and sink type under docs/sources/
// and docs/sinks/. `npm run docs` writes them; a unit test fails when the
// pages and the schema disagree.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AGGREGATE_SCHEMA, CONFIG_SCHEMA, SINK_SCHEMA, SINK_SCHEMAS, SINK_TYPES, SOURCE_SCHEMA, SOURCE_TYPES, STORE_SCHEMA } from './schema.js';
import { SINK_COMMON_PROPS } from '../sinks/sink.js';

/** the sink keys every type takes, and each type's own (from each type's schema) */
export const SINK_COMMON_KEYS = ['name', 'type', ...Object.keys(SINK_COMMON_PROPS).filter((k) => k !== 'name')];
export const SINK_TYPE_KEYS: Record<(typeof SINK_TYPES)[number], string[]> = Object.fromEntries(SINK_TYPES.map((t) =>
  [t, Object.keys(SINK_SCHEMAS[t].properties).filter((k) => !SINK_COMMON_KEYS.includes(k))])) as Record<(typeof SINK_TYPES)[number], string[]>;
const SINK_INTRO: Record<(typeof SINK_TYPES)[number], string> = {
  stdout: 'Records on standard output, one line each.',
  file: 'Records appended to a file, one line each: asynchronous writes, one per batch; created with `mode`; reopened on SIGHUP (logrotate: rename, then SIGHUP) or rotated by size.',
  syslog: 'One syslog message per record: to a local unix datagram socket (`/dev/log`), or to a collector over UDP or TCP (newline framing; over TCP at-least-once: a record counts as written once the collector\'s kernel acknowledged it, what was not acknowledged when a connection is lost is sent again; reconnects with backoff, records wait in the queue meanwhile). RFC 3164 or RFC 5424.',
  pcap: 'The packet logs of NFLOG sources as a pcap file: link type RAW (101, the packet from its IP header, byte for byte ulogd2\'s PCAP output) or NFLOG (239, the whole NFLOG message, as `tcpdump -i nflog:N` writes it); asynchronous writes, one per batch; appended to if the file is a pcap file of the same link type, else refused; a new or rotated file starts with the pcap header; reopened on SIGHUP or rotated by size. It takes only nflog sources: name them in `sources` when the daemon has others.',
  ipfix: 'Flow records exported to an IPFIX collector (RFC 7011) over UDP or TCP: nfdump\'s nfcapd, pmacct\'s nfacctd, or any other. One record per flow when it ends, in one of four templates (IPv4 or IPv6, with or without NAT): `flowStartMilliseconds` and `flowEndMilliseconds` (the start rounded down, the end up), 64-bit counters of each direction (the original as `octetDeltaCount`/`packetDeltaCount`, the reply as RFC 5103\'s reverse `octetDeltaCount`/`packetDeltaCount`, enterprise 29305: nfdump\'s in and out; nfacctd reads only the first), `protocolIdentifier`, the ports (ICMP: the echo id as the source port, type and code in `icmpTypeCodeIPv4`/`IPv6`), `flowEndReason` (3: FIN or RST seen, 1: the entry expired, 4: deleted, or an end the record cannot tell: its DESTROY lost, the timeouts unknown), the addresses, and for a translated flow the addresses and ports after NAT (`postNATSourceIPv4Address` 225, `postNATDestinationIPv4Address` 226, `postNAPTSourceTransportPort` 227, `postNAPTDestinationTransportPort` 228, IPv6: 281 and 282). With `nat_events`, RFC 8158 NAT session create and delete events too (no create for a flow whose start is not known: first seen in a dump without kernel timestamps; a delete may then come without its create, as for flows open before the sink was added). Over UDP the templates go first and again every `template_refresh` seconds; over TCP once at the start of each connection, whose sequence numbers count from 0; sequence numbers count the data records (a collector tells the gaps). A flow record that corrects one exported before (its DESTROY came after a dump ended it) is not exported again (counted as `skipped`). A long flow is reported while it runs (`active_timeout`, `inactive_timeout`: `flowEndReason` 2 and 1), each record counting what came since the one before and its end the rest, from dumps of the conntrack table (its counters read, never zeroed), which needs conntrack accounting (`enable_accounting` on the source); several IPFIX sinks with timeouts on one source share the least of them. UDP has no acknowledgement: a record counts as written once the kernel sent its datagram; a datagram it refused is counted dropped. TCP is at-least-once, as the syslog sink\'s: a record counts as written once the collector\'s kernel acknowledged it; what a lost connection had not is sent again on the next (`resent`), made with backoff. It takes the flow records of conntrack sources (as `records = "flows"`): no `format`.',
  journal: 'systemd-journald\'s native protocol: MESSAGE in the sink\'s format, SYSLOG_IDENTIFIER, PRIORITY, and a CT_* field for every conntrack record field (addresses, ports, protocol, state, event, the NAT translation as CT_NAT / CT_SNAT_* / CT_DNAT_*, counters, times), a PKT_* field for every packet log field (prefix, group, hook, interfaces, addresses, ports, protocol, TCP flags, ICMP type, mark, uid, sequence numbers), or, with `records = "flows"`, a FLOW_* field for every flow record field (FLOW_START_US, FLOW_END_US, FLOW_SRC, FLOW_SNAT_ADDR, FLOW_ORIG_BYTES, FLOW_FLAGS, FLOW_NETNS, …). Entries too large for one datagram go in a sealed memfd.',
};

type Prop = { description?: string; default?: unknown; enum?: readonly unknown[]; type?: unknown; items?: { enum?: readonly unknown[]; type?: unknown }; const?: unknown; minimum?: number; maximum?: number };

function typeOf(p: Prop): string {
  if (p.const !== undefined) return JSON.stringify(p.const);
  if (p.enum) return p.enum.map((v) => JSON.stringify(v)).join(' \\| ');
  if (p.type === 'array') {
    const it = p.items ?? {};
    const inner = it.enum ? it.enum.map((v) => JSON.stringify(v)).join(' \\| ') : Array.isArray(it.type) ? it.type.join(' or ') : String(it.type);
    return `array of ${inner}`;
  }
  if (Array.isArray(p.type) && p.type.includes('array')) {
    const inner = p.items && !Array.isArray(p.items.type) ? String(p.items.type) : 'string';
    return `${p.type.filter((x) => x !== 'array').join(' or ')} or array of ${inner}`;
  }
  let t = String(p.type);
  if (p.minimum !== undefined || p.maximum !== undefined) t += ` (${p.minimum ?? ''}..${p.maximum ?? ''})`;
  return t;
}

function table(props: Record<string, Prop>, required: readonly string[] = []): string {
  let s = '| key | type | default | meaning |\n|---|---|---|---|\n';
  for (const [k, p] of Object.entries(props)) {
    const def = required.includes(k) ? '(required)' : p.default === undefined ? '' : `\`${JSON.stringify(p.default)}\``;
    s += `| \`${k}\` | ${typeOf(p)} | ${def} | ${(p.description ?? '').replace(/\|/g, '\\|')} |\n`;
  }
  return s;
}

export function renderConfigDocs(): string {
  return `# Configuration (\`conntrail run --config FILE\`)

<!-- generated from src/config/schema.ts by src/config/docs.ts: do not edit -->

A TOML file, validated as a whole before anything starts
(\`conntrail check-config FILE\` does only that). Every error names the file,
the line and the key. A file that starts with \`{\` is read as VyOS's
conntrack-logger JSON configuration instead (see the README).

## Top level

${table(CONFIG_SCHEMA.properties as unknown as Record<string, Prop>, CONFIG_SCHEMA.required)}
## \`[[source]]\`

Each \`[[source]]\` table has a \`type\`: ${Object.keys(SOURCE_TYPES).map((t) => `[\`${t}\`](sources/${t}.md)`).join(', ')} (the default is \`conntrack\`), and takes only the keys of its type. A sink's format must exist for the kind of record each of its sources sends (conntrack events, packet logs, TCP state changes); the configuration is refused otherwise.

### \`type = "conntrack"\`

${SOURCE_SCHEMA.description}

${table(SOURCE_SCHEMA.properties as unknown as Record<string, Prop>)}
### \`type = "nflog"\`

${SOURCE_TYPES.nflog.schema.description}

${table(SOURCE_TYPES.nflog.schema.properties as unknown as Record<string, Prop>, SOURCE_TYPES.nflog.schema.required)}
### \`type = "tcpstates"\`

${SOURCE_TYPES.tcpstates.schema.description} Formats: \`tcpstates\` (the default: tcpstates -T's line), \`tcpstates-wide\`, \`tcpstates-csv\`, \`tcpstates-message\` (tcpstates -Y's MESSAGE), \`json\`; see [tcpstates.md](tcpstates.md).

${table(SOURCE_TYPES.tcpstates.schema.properties as unknown as Record<string, Prop>, SOURCE_TYPES.tcpstates.schema.required)}
## \`[[aggregate]]\`

${AGGREGATE_SCHEMA.description} The stage's page: [stages/aggregate.md](stages/aggregate.md).

${table(AGGREGATE_SCHEMA.properties as unknown as Record<string, Prop>, AGGREGATE_SCHEMA.required)}
## \`[[sink]]\`

${SINK_SCHEMA.description} One page per type: ${SINK_TYPES.map((t) => `[${t}](sinks/${t}.md)`).join(', ')}.

${table(SINK_SCHEMA.properties as unknown as Record<string, Prop>, SINK_SCHEMA.required)}
## \`[store]\`

${STORE_SCHEMA.description} What is stored and how to query it: [flows.md](flows.md).

${table(STORE_SCHEMA.properties as unknown as Record<string, Prop>)}
## Example

\`\`\`toml
log_level = "info"

[[source]]
name = "fw"
events = ["new", "destroy"]
not_src = ["192.168.100.0/24"]

[[sink]]
type = "file"
path = "/var/log/conntrail/flows.json"
format = "ulogd-json"
when_full = "block"

[[sink]]
type = "stdout"
format = "conntrack"
output = ["id"]

[store]
type = "sqlite"
path = "/var/lib/conntrail/flows.db"
retention = "90d"
\`\`\`
`;
}

/** the keys as a sink type's own schema has them (`t`), else as the overview has them */
function pick(keys: string[], t?: (typeof SINK_TYPES)[number]): Record<string, Prop> {
  const all = SINK_SCHEMA.properties as unknown as Record<string, Prop>;
  const own = t ? SINK_SCHEMAS[t].properties as unknown as Record<string, Prop> : {};
  return Object.fromEntries(keys.map((k) => [k, own[k] ?? all[k]]));
}

/** Every generated page, by path under docs/. */
export function renderPages(): Record<string, string> {
  const pages: Record<string, string> = { 'config.md': renderConfigDocs() };
  const gen = '<!-- generated from src/config/schema.ts by src/config/docs.ts: do not edit -->';
  for (const [t, v] of Object.entries(SOURCE_TYPES)) {
    pages[`sources/${t}.md`] = `# Source \`${t}\`\n\n${gen}\n\n${v.schema.description}\n\n` +
      table(v.schema.properties as unknown as Record<string, Prop>, v.schema.required);
  }
  for (const t of SINK_TYPES) {
    pages[`sinks/${t}.md`] = `# Sink \`${t}\`\n\n${gen}\n\n${SINK_INTRO[t]}\n\n## Keys of every sink\n\n` +
      table(pick(SINK_COMMON_KEYS.filter((k) => Object.hasOwn(SINK_SCHEMAS[t].properties, k)), t), SINK_SCHEMA.required) +
      (SINK_TYPE_KEYS[t].length ? `\n## Keys of a \`${t}\` sink\n\n` + table(pick(SINK_TYPE_KEYS[t], t), SINK_SCHEMAS[t].required) : '');
  }
  pages['stages/aggregate.md'] = `# Stage \`[[aggregate]]\`\n\n${gen}\n\n${AGGREGATE_SCHEMA.description}\n\n` +
    `## Keys\n\n${table(AGGREGATE_SCHEMA.properties as unknown as Record<string, Prop>, AGGREGATE_SCHEMA.required)}\n` +
    '## Example\n\nPer minute, per inside host and public address, protocol and destination port, exported beside the raw flows, and written to a file as JSON lines:\n\n' +
    '```toml\n[[source]]\nenable_accounting = true\n\n[[aggregate]]\nname = "per-minute"\nkeys = ["src", "nat_src", "proto", "dport"]\ninterval = 60\n\n' +
    '[[sink]]\ntype = "ipfix"\naddress = "udp://192.0.2.10:4739"\n\n[[sink]]\ntype = "ipfix"\naddress = "udp://192.0.2.10:4740"\naggregate = "per-minute"\n\n' +
    '[[sink]]\ntype = "file"\npath = "/var/log/conntrail/per-minute.jsonl"\naggregate = "per-minute"\n```\n\n' +
    'nfdump reads the records with their flow count (`aggr_flows`); `nfdump -A srcip,xsrcip,proto,dstport` over the raw export gives the same sums per interval.\n\n' +
    'A JSON line has the stage (`aggregate`), the interval (`interval_start`, `interval_start_us`, `interval_s`: the flows ended in it), the earliest start and latest end of its flows (`first`, `last`, and in µs), ' +
    '`family` (null without an address key), each key (`proto`, `src`, `sport`, `dst`, `dport`, `nat_src`, `nat_sport`, `nat_dst`, `nat_dport`: null when not a key; an address cut to a prefix as its network, `10.0.1.0/24`), ' +
    '`flows`, and `packets` and `bytes` of each direction (`orig`, `reply`). The journal has the same as AGG_* fields (times in µs, keys that are not folded by left out).\n\n' +
    'With `store = true` the records go to the flow store too (table `aggregates`, deleted by the store\'s `retention` by interval start); `conntrail aggregates` searches them (`--name`, `--since`, `--until`, `--host`, `--port`, `--proto`, `--limit`, `--json`, `--csv`).\n';
  return pages;
}

if (process.argv[1]?.endsWith('docs.js')) {
  const root = process.argv[2] ?? 'docs';
  for (const [p, text] of Object.entries(renderPages())) {
    mkdirSync(dirname(join(root, p)), { recursive: true });
    writeFileSync(join(root, p), text);
  }
}
