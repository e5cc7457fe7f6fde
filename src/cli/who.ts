// `conntrail who ADDR[:PORT] --at TIME`: which inside host was behind a
// public address and port (SNAT / masquerade), or which inside server
// answered on it (DNAT / port forward), at that time.
import { Command } from 'commander';
import { natKind } from '../flow/record.js';
import type { StoredFlow } from '../store/store.js';
import type { AddrPort } from '../store/sql.js';
import { parseIp } from '../util/ip.js';
import { isoMillis, parseDuration, parseTime } from '../util/time.js';
import { UsageError } from '../util/errors.js';
import { parseProto } from './options.js';
import { addStoreOptions, openReader, query, type StoreCliOptions } from './store-open.js';
import { alignedTable, flowJson, hostPort, protoName, sides } from './flowfmt.js';

/** "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]:80" */
export function parseAddrPort(text: string, opt: string): AddrPort {
  let addr = text;
  let port: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6) { addr = v6[1]; port = v6[2]; } else if (/^[^:]+:\d+$/.test(text)) { [addr, port] = text.split(':'); }
  const bytes = parseIp(addr);
  if (!bytes) throw new UsageError(`${opt}: "${text}" is not ADDRESS[:PORT] (e.g. 198.51.100.7:40001 or [2001:db8::1]:443)`);
  if (port !== undefined && (Number(port) > 65535)) throw new UsageError(`${opt}: "${text}": port must be 0-65535`);
  return { addr, port: port === undefined ? undefined : Number(port) };
}

export type Verdict = 'exact' | 'nearest' | 'ambiguous' | 'none';

export interface WhoAnswer {
  verdict: Verdict;
  /** the inside hosts (addresses) the answer names */
  inside: string[];
  /** the flows the verdict rests on, nearest first */
  flows: StoredFlow[];
  /** they were open at the instant asked about (not only within the window) */
  instant: boolean;
}

const insideAddr = (f: StoredFlow) => (natKind(f) === 'dnat' ? f.natDst! : f.src);

/** The verdict over the flows of the window. */
export function judge(flows: StoredFlow[], at: number): WhoAnswer {
  const dist = (f: StoredFlow) => (f.start > at ? f.start - at : f.end !== null && f.end < at ? at - f.end : 0);
  const sorted = [...flows].sort((a, b) => dist(a) - dist(b) || a.start - b.start);
  const exact = sorted.filter((f) => dist(f) === 0);
  const use = exact.length ? exact : sorted;
  const inside = [...new Set(use.map(insideAddr))];
  const instant = exact.length > 0;
  if (!use.length) return { verdict: 'none', inside: [], flows: [], instant };
  if (inside.length > 1) return { verdict: 'ambiguous', inside, flows: use, instant };
  return { verdict: instant ? 'exact' : 'nearest', inside, flows: use, instant };
}

interface WhoOptions extends StoreCliOptions { at?: string; proto?: string; remote?: string; window: string; json?: boolean }

export function whoCommand(): Command {
  return addStoreOptions(new Command('who')
    .description('which inside host was behind a public ADDRESS[:PORT] (SNAT, masquerade), or which inside server answered on it (DNAT), at a time')
    .argument('<address[:port]>', 'the public address and port, e.g. 198.51.100.7:40001 or [2001:db8::1]:443')
    .option('--at <time>', 'the time: ISO 8601 ("2026-11-23T14:05:09Z", "2026-11-23 14:05:09" local), @EPOCH, "now", "-10m"', 'now')
    .option('--proto <proto>', 'only this protocol (tcp, udp, ... or a number)')
    .option('--remote <address[:port]>', 'only flows with this remote peer (the outside host the flow went to or came from)')
    .option('--window <duration>', 'also look this far before and after the time for the nearest flow ("30s", "5m")', '1m')
    .option('--json', 'print the answer as JSON'))
    .addHelpText('after', `
Verdicts: exact (a flow held the address at that instant), nearest (none did;
the nearest flow within the window), ambiguous (several different inside
hosts match: all are listed, narrow it with --remote or --proto), none.
Exit status: 0 with an answer, 1 when no flow matches.`)
    .action(async (target: string, o: WhoOptions) => {
      const pub = parseAddrPort(target, 'ADDRESS[:PORT]');
      let at: number;
      let window: number;
      try { at = parseTime(o.at ?? 'now'); } catch (e) { throw new UsageError(`--at: ${(e as Error).message}`); }
      try { window = parseDuration(o.window); } catch (e) { throw new UsageError(`--window: ${(e as Error).message}`); }
      const proto = o.proto === undefined ? undefined : parseProto(o.proto, '--proto');
      const remote = o.remote === undefined ? undefined : parseAddrPort(o.remote, '--remote');
      const store = await openReader(o);
      const [flows, ns] = await query(store, 'who', async () => [
        await store.who(pub, { since: at - window, until: at + window }, proto, remote), await store.namespaces(),
      ] as const);
      const ans = judge(flows, at);
      const what = `${hostPort(pub.addr, pub.port ?? null, 0)}${proto !== undefined ? `/${protoName(proto)}` : ''}`;
      if (o.json) {
        process.stdout.write(JSON.stringify({
          query: { address: pub.addr, port: pub.port ?? null, at: isoMillis(at), proto: proto === undefined ? null : protoName(proto), remote: o.remote ?? null, window_ms: window },
          verdict: ans.verdict, inside: ans.inside, flows: ans.flows.map((f) => ({ ...flowJson(f, ns), ...sidesJson(f) })),
        }, null, 2) + '\n');
      } else {
        const when = isoMillis(at);
        const head = ans.verdict === 'none' ? `none: no flow used ${what} within ${o.window} of ${when}`
          : ans.verdict === 'ambiguous' ? `ambiguous: ${ans.inside.length} different inside hosts used ${what} ${ans.instant ? 'at' : `within ${o.window} of`} ${when}: ${ans.inside.join(', ')} (narrow with --remote or --proto)`
            : ans.verdict === 'exact' ? `exact: ${ans.inside[0]} was behind ${what} at ${when}`
              : `nearest: ${ans.inside[0]} used ${what} ${describeGap(ans.flows[0], at)}`;
        let out = head + '\n';
        if (ans.flows.length) {
          out += '\n' + alignedTable(['START', 'END', 'PROTO', 'NAT', 'INSIDE', 'PUBLIC', 'REMOTE'], ans.flows.map((f) => {
            const s = sides(f);
            return [isoMillis(f.start), f.end === null ? 'open' : isoMillis(f.end), protoName(f.proto), natKind(f), s.inside, s.public ?? '-', s.remote];
          }));
        }
        process.stdout.write(out);
      }
      if (ans.verdict === 'none') process.exitCode = 1;
    });
}

function sidesJson(f: StoredFlow): Record<string, unknown> {
  const s = sides(f);
  return { inside: s.inside, public: s.public, remote: s.remote };
}

function describeGap(f: StoredFlow, at: number): string {
  if (f.start > at) return `from ${isoMillis(f.start)}, ${((f.start - at) / 1000).toFixed(3)} s after ${isoMillis(at)}`;
  return `until ${isoMillis(f.end!)}, ${((at - f.end!) / 1000).toFixed(3)} s before ${isoMillis(at)}`;
}
