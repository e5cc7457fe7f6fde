// `conntrail run`: the daemon, from a validated configuration file.
import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { defaultPlan, describePlan, loadConfig } from '../config/load.js';
import { Pipeline, type DaemonStats } from '../daemon/daemon.js';
import { Logger } from '../daemon/log.js';
import { createMetrics, serveMetrics } from '../daemon/metrics.js';
import { FatalError } from '../util/errors.js';
import { Notifier } from '../daemon/notify.js';
import type { Server } from 'node:http';

export const DEFAULT_CONFIG = '/etc/conntrail/conntrail.toml';

export function statsText(s: DaemonStats): string {
  const src = s.sources.map((x) => x.type === 'nflog'
    ? `source ${x.name}: packets=${x.packets} seq_gaps=${x.seqGaps} datagrams=${x.datagrams} overflows=${x.enobufs} ` +
      `kernel_drops=${x.kernelDrops} malformed=${x.malformed} truncated_packets=${x.truncatedPackets} rcvbuf=${x.rcvbuf}`
    : x.type === 'tcpstates'
    ? `source ${x.name}: changes=${x.records} drops=${x.drops} missed=${x.missed} batches=${x.batches} wakeups=${x.wakeups} malformed=${x.malformed}` +
      // following namespaces: each one's changes, as the instances of conntrack and nflog sources are listed
      Object.entries(x.byNetns ?? {}).map(([ns, n]) => `; source ${x.name}@${ns}: changes=${n}`).join('')
    : `source ${x.name}: events=${x.events} datagrams=${x.datagrams} overflows=${x.enobufs} ` +
      `kernel_drops=${x.kernelDrops} resyncs=${x.resyncs} dumped=${x.dumped} malformed=${x.malformed} rcvbuf=${x.rcvbuf}`);
  const snk = s.sinks.map((x) => `sink ${x.name}: written=${x.written} dropped=${x.dropped} queued=${x.queued} errors=${x.errors}` +
    (x.resent !== undefined ? ` resent=${x.resent}` : '') + (x.skipped !== undefined ? ` skipped=${x.skipped}` : ''));
  const st = s.store ? [`store ${s.store.store}: flows_written=${s.store.written} open_written=${s.store.openWritten} ` +
    `corrected=${s.store.corrected} queued=${s.store.queued} full=${s.store.full} errors=${s.store.errors} spooled=${s.store.spooled} ` +
    `spool_pending=${s.store.spoolPending} replayed=${s.store.replayed} expired=${s.store.expired}` +
    ` packets_written=${s.store.packetsWritten} packets_expired=${s.store.packetsExpired}` +
    ` tcp_states_written=${s.store.tcpStatesWritten} tcp_states_expired=${s.store.tcpStatesExpired}` +
    ` aggregates_written=${s.store.aggregatesWritten} aggregates_expired=${s.store.aggregatesExpired}`] : [];
  const fl = s.flows ? [`flows: open=${s.flows.open} opened=${s.flows.opened} closed=${s.flows.closed} ` +
    `partial=${s.flows.partial} settled=${s.flows.settled} corrected=${s.flows.corrected} missing=${s.flows.missing} quiet=${s.flows.quiet}` +
    (s.flows.sent || s.flows.unsent ? ` records_sent=${s.flows.sent} records_unsent=${s.flows.unsent}` : '') + (s.flows.interim ? ` interim_reports=${s.flows.interim}` : '')] : [];
  const fw = s.followed.map((f) => `source ${f.source}: namespaces_attached=${f.attached} namespaces_failing=${f.failing}`);
  const ag = (s.aggregates ?? []).map((a) => `aggregate ${a.name}: flows=${a.flows} records=${a.records} late=${a.late} early=${a.early} held=${a.held}`);
  return [...fw, ...src, ...ag, ...snk, ...fl, ...st].join('; ');
}

export function runCommand(): Command {
  return new Command('run')
    .description('run the daemon: sources -> filters -> sinks, as the configuration file says')
    .option('-c, --config <file>', `TOML configuration, or a VyOS conntrack-logger JSON file (default: ${DEFAULT_CONFIG} if it exists, else built-in defaults: one conntrack source, flows into the SQLite store)`)
    .action((o: { config?: string }) => runDaemon(o.config));
}

export async function runDaemon(given: string | undefined): Promise<void> {
  const file = given ?? (existsSync(DEFAULT_CONFIG) ? DEFAULT_CONFIG : undefined);
  const load = () => (file === undefined ? defaultPlan() : loadConfig(file));
  const plan = load();
  const log = new Logger(plan.config.log_level);
  const pipeline = new Pipeline(plan, log);
  await pipeline.start();
  let metrics: Server | undefined;
  if (plan.config.listen) {
    try {
      metrics = await serveMetrics(plan.config.listen, createMetrics(() => pipeline.stats()));
    } catch (e) {
      await pipeline.stop();
      throw new FatalError(`metrics: cannot listen on ${plan.config.listen}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    log.info(`metrics at http://${plan.config.listen}/metrics`);
  }
  const described = describePlan(plan);
  log.info(`started with ${file ?? 'built-in defaults'} (${described.kind}): ${described.counts}`);
  if (plan.kind === 'vyos') log.info('Conntrack socket bound and listening for messages.');
  const notify = new Notifier((m) => log.warn(m));
  notify.ready(described.counts);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = async (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info(`${sig}: stopping, writing out what is queued`);
      notify.stopping();
      const st = await pipeline.stop();
      metrics?.close();
      log.info(`stopped: ${statsText(st)}`);
      resolve();
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
    process.on('SIGUSR1', () => log.info(`counters: ${statsText(pipeline.stats())}`));
    let reloading = false;
    let hupAgain = false;
    const onHup = (): void => {
      if (stopping) return;
      // a SIGHUP during a reload (logrotate's, say) is done right after it
      if (reloading) { hupAgain = true; return; }
      let next;
      try {
        next = load();
      } catch (e) {
        log.error(`SIGHUP: new configuration rejected, the running one stays: ${(e as Error).message}`);
        pipeline.reopen();
        return;
      }
      reloading = true;
      // unchanged sources keep their sockets and flow tables: nothing is
      // read twice or missed; unchanged sinks stay, changed ones are opened
      // anew, then the old ones close
      pipeline.reload(next).then(() => {
        log.level = next.config.log_level;
        log.info(`SIGHUP: configuration reloaded from ${file ?? 'built-in defaults'}, files reopened`);
        notify.send('READY=1\nSTATUS=reloaded');
      }, (e: Error) => {
        log.error(`SIGHUP: new configuration could not start, the running one stays: ${e.message}`);
        pipeline.reopen();
      }).finally(() => {
        reloading = false;
        if (hupAgain) { hupAgain = false; onHup(); }
      });
    };
    process.on('SIGHUP', onHup);
  });
}
