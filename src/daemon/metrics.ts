// Prometheus metrics of the daemon (prom-client), read from the pipeline's
// own counters when scraped: GET http://LISTEN/metrics.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { DaemonStats } from './daemon.js';

export function createMetrics(stats: () => DaemonStats): Registry {
  const reg = new Registry();
  collectDefaultMetrics({ register: reg, prefix: 'conntrail_' });
  // counters read at scrape time: reset, then set to the pipeline's totals
  const counter = (name: string, help: string, labelNames: string[], fill: (c: Counter, s: DaemonStats) => void) =>
    new Counter({ name, help, labelNames, registers: [reg], collect(this: Counter) { this.reset(); fill(this, stats()); } });
  counter('conntrail_events_received_total', 'conntrack events received, by source and type (before filters)', ['source', 'type'], (c, s) => {
    for (const src of s.sources) if (src.type === 'conntrack') for (const [t, n] of Object.entries(src.byType)) c.inc({ source: src.name, type: t.toLowerCase() }, n);
  });
  counter('conntrail_packets_received_total', 'packets received from NFLOG, by source (before filters)', ['source'], (c, s) => {
    for (const x of s.sources) if (x.type === 'nflog') c.inc({ source: x.name }, x.packets);
  });
  counter('conntrail_packets_lost_total', 'packets the NFLOG sequence numbers show were never received, by source', ['source'], (c, s) => {
    for (const x of s.sources) if (x.type === 'nflog') c.inc({ source: x.name }, x.seqGaps);
  });
  counter('conntrail_tcp_state_changes_received_total', 'TCP state changes received from the eBPF program, by source', ['source'], (c, s) => {
    for (const x of s.sources) if (x.type === 'tcpstates') c.inc({ source: x.name }, x.records);
  });
  counter('conntrail_tcp_state_changes_by_netns_total', 'TCP state changes received, by source and network namespace, of a tcpstates source that follows namespaces by pattern (the namespaces traced now)', ['source', 'netns'], (c, s) => {
    for (const x of s.sources) if (x.type === 'tcpstates' && x.byNetns) for (const [netns, n] of Object.entries(x.byNetns)) c.inc({ source: x.name, netns }, n);
  });
  counter('conntrail_tcp_state_changes_lost_total', 'TCP state changes lost: the ring buffer was full, or the kernel skipped the program (already running on that CPU), by source', ['source'], (c, s) => {
    for (const x of s.sources) if (x.type === 'tcpstates') c.inc({ source: x.name }, x.drops + x.missed);
  });
  counter('conntrail_netlink_datagrams_total', 'netlink datagrams read', ['source'], (c, s) => { for (const x of s.sources) c.inc({ source: x.name }, x.datagrams); });
  counter('conntrail_netlink_bytes_total', 'netlink bytes read', ['source'], (c, s) => { for (const x of s.sources) c.inc({ source: x.name }, x.bytes); });
  counter('conntrail_netlink_overflows_total', 'receive buffer overruns (ENOBUFS) reported by the socket', ['source'], (c, s) => { for (const x of s.sources) c.inc({ source: x.name }, x.enobufs); });
  counter('conntrail_kernel_drops_total', 'events or packets the kernel could not queue for the socket (SO_MEMINFO)', ['source'], (c, s) => { for (const x of s.sources) c.inc({ source: x.name }, Math.max(0, x.kernelDrops)); });
  counter('conntrail_resyncs_total', 'table dumps after an overrun', ['source'], (c, s) => { for (const x of s.sources) if (x.type === 'conntrack') c.inc({ source: x.name }, x.resyncs); });
  counter('conntrail_decode_malformed_total', 'messages the decoder rejected', ['source'], (c, s) => { for (const x of s.sources) c.inc({ source: x.name }, x.malformed); });
  counter('conntrail_sink_written_total', 'records written, by sink', ['sink'], (c, s) => { for (const k of s.sinks) c.inc({ sink: k.name }, k.written); });
  counter('conntrail_sink_dropped_total', 'records dropped because the sink was full', ['sink'], (c, s) => { for (const k of s.sinks) c.inc({ sink: k.name }, k.dropped); });
  counter('conntrail_sink_errors_total', 'write errors (retried)', ['sink'], (c, s) => { for (const k of s.sinks) c.inc({ sink: k.name }, k.errors); });
  counter('conntrail_sink_resent_total', 'records sent again because a connection was lost before the peer acknowledged them (syslog and IPFIX over TCP)', ['sink'], (c, s) => {
    for (const k of s.sinks) if (k.resent !== undefined) c.inc({ sink: k.name }, k.resent);
  });
  counter('conntrail_sink_skipped_total', 'flow records not exported because they correct one exported before (IPFIX)', ['sink'], (c, s) => {
    for (const k of s.sinks) if (k.skipped !== undefined) c.inc({ sink: k.name }, k.skipped);
  });
  // the aggregation stages
  for (const [what, help] of [['flows', 'flow records folded'], ['records', 'aggregated records sent'], ['late', 'flows folded after their interval was sent (a record of their own)'], ['early', 'aggregated records sent before their interval was due (max_keys reached)']] as const) {
    counter(`conntrail_aggregate_${what}_total`, help, ['aggregate'], (c, s) => {
      for (const a of s.aggregates ?? []) c.inc({ aggregate: a.name }, a[what]);
    });
  }
  // the flow table and the store (present when a store is configured)
  const store = (name: string, help: string, get: (s: NonNullable<DaemonStats['store']>) => number) =>
    counter(name, help, ['store'], (c, s) => { if (s.store) c.inc({ store: s.store.store }, get(s.store)); });
  store('conntrail_store_flows_written_total', 'flow records written to the store', (x) => x.written);
  store('conntrail_store_batches_total', 'batches (transactions) written to the store', (x) => x.batches);
  store('conntrail_store_errors_total', 'batches the store refused or could not take (each kept and retried)', (x) => x.errors);
  store('conntrail_store_spooled_total', 'records that went through the on-disk spool', (x) => x.spooled);
  store('conntrail_store_replayed_total', 'spooled records written to the store', (x) => x.replayed);
  store('conntrail_store_expired_total', 'flows deleted by retention', (x) => x.expired);
  store('conntrail_store_packets_written_total', 'packet logs written to the store', (x) => x.packetsWritten);
  store('conntrail_store_packets_expired_total', 'packet logs deleted by retention', (x) => x.packetsExpired);
  store('conntrail_store_tcp_states_written_total', 'TCP state changes written to the store', (x) => x.tcpStatesWritten);
  store('conntrail_store_tcp_states_expired_total', 'TCP state changes deleted by retention', (x) => x.tcpStatesExpired);
  store('conntrail_store_aggregates_written_total', 'aggregated flow records written', (x) => x.aggregatesWritten);
  store('conntrail_store_aggregates_expired_total', 'aggregated flow records deleted by retention', (x) => x.aggregatesExpired);
  store('conntrail_store_corrected_total', 'settled rows replaced by the record of their late DESTROY', (x) => x.corrected);
  store('conntrail_store_full_total', 'times the store writer was full (neither store nor spool took batches) and the sources paused', (x) => x.full);
  const flows = (name: string, help: string, get: (f: NonNullable<DaemonStats['flows']>) => number) =>
    counter(name, help, [], (c, s) => { if (s.flows) c.inc(get(s.flows)); });
  flows('conntrail_flows_opened_total', 'flows the flow table opened', (f) => f.opened);
  flows('conntrail_flows_closed_total', 'flow records completed', (f) => f.closed);
  flows('conntrail_flows_partial_total', 'flows recorded from their DESTROY alone (NEW not seen)', (f) => f.partial);
  flows('conntrail_flows_settled_total', 'flows ended by a table dump (DESTROY lost)', (f) => f.settled);
  flows('conntrail_flows_corrected_total', 'settled flows whose DESTROY came later and corrected their row', (f) => f.corrected);
  flows('conntrail_flow_records_sent_total', 'ended flows sent to the sinks with records = "flows" (once, whatever their number)', (f) => f.sent);
  flows('conntrail_flow_records_unsent_total', 'ended flows that could not be sent whole to the sinks with records = "flows" (settled, but opened before such a sink was configured or by an earlier run; the store has them)', (f) => f.unsent);
  flows('conntrail_flow_interim_reports_total', 'interim reports of open flows sent to the IPFIX sinks with an active or inactive timeout (flowEndReason 1 or 2)', (f) => f.interim);
  const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge, s: DaemonStats) => void) =>
    new Gauge({ name, help, labelNames, registers: [reg], collect(this: Gauge) { this.reset(); fill(this, stats()); } });
  gauge('conntrail_netns_attached', 'network namespaces a source that follows them by pattern is attached to', ['source'], (g, s) => { for (const f of s.followed) g.set({ source: f.source }, f.attached); });
  gauge('conntrail_netns_failing', 'network namespaces matching a source\'s pattern that could not be attached (tried again every 10 s)', ['source'], (g, s) => { for (const f of s.followed) g.set({ source: f.source }, f.failing); });
  gauge('conntrail_flows_open', 'flows open in the flow table', [], (g, s) => { if (s.flows) g.set(s.flows.open); });
  gauge('conntrail_flows_missing', 'flows missing from a table dump, waiting a moment for a late DESTROY before they are ended', [], (g, s) => { if (s.flows) g.set(s.flows.missing); });
  gauge('conntrail_store_queue_depth', 'records in memory not yet handed to the store', ['store'], (g, s) => { if (s.store) g.set({ store: s.store.store }, s.store.queued); });
  gauge('conntrail_store_spool_pending', 'records waiting in the on-disk spool', ['store'], (g, s) => { if (s.store) g.set({ store: s.store.store }, s.store.spoolPending); });
  new Gauge({
    name: 'conntrail_sink_queue_depth', help: 'records waiting in the sink queue', labelNames: ['sink'], registers: [reg],
    collect(this: Gauge) { this.reset(); for (const k of stats().sinks) this.set({ sink: k.name }, k.queued); },
  });
  new Gauge({
    name: 'conntrail_receive_buffer_bytes', help: 'receive buffer granted by the kernel', labelNames: ['source'], registers: [reg],
    collect(this: Gauge) { this.reset(); for (const x of stats().sources) this.set({ source: x.name }, x.rcvbuf); },
  });
  return reg;
}

/** Serves /metrics on "HOST:PORT"; resolves once listening. */
export function serveMetrics(listen: string, reg: Registry): Promise<Server> {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(listen.slice(i + 1));
  const server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
      reg.metrics().then((text) => { res.writeHead(200, { 'Content-Type': reg.contentType }); res.end(text); },
        (e: Error) => { res.writeHead(500); res.end(e.message); });
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('conntrail: metrics are at /metrics\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(server); });
  });
}
