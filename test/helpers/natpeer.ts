// Ground truth for the NAT attribution tests: a server that logs every
// connection as it saw it (the peer address and port are the *public* ones
// after NAT; the first line the client sends names the inside host), and a
// client that runs a plan of TCP connections and UDP exchanges from several
// local addresses. Run as `node natpeer.js server|client ...` inside a
// network namespace; both write JSON lines to stdout.
import { createServer, connect } from 'node:net';
import { createSocket } from 'node:dgram';

export interface PlanItem {
  id: string;
  host: string;
  proto: 'tcp' | 'udp';
  dst: string;
  dport: number;
  /** ms after the plan starts */
  at: number;
  /** how long the connection is held open (ms); UDP: datagrams sent over this time */
  hold: number;
}

/** What a server saw: one line when a connection opened, one when it closed (t: µs since the epoch). */
export interface SeenLine {
  ev: 'open' | 'close';
  id: string;
  host: string;
  proto: 'tcp' | 'udp';
  lport: number;
  peer: string;
  pport: number;
  t: number;
}

const out = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');
/** µs since the epoch (the wall clock at start, then the monotonic clock: no ms rounding) */
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function server(tcpPorts: number[], udpPorts: number[]): void {
  for (const port of tcpPorts) {
    createServer((s) => {
      const peer = (s.remoteAddress ?? '').replace(/^::ffff:/, '');
      const pport = s.remotePort ?? 0;
      let buf = '';
      let who: { id: string; host: string } | undefined;
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        buf += d;
        const nl = buf.indexOf('\n');
        if (!who && nl >= 0) {
          const [id, host] = buf.slice(0, nl).split(' ');
          who = { id, host };
          out({ ev: 'open', id, host, proto: 'tcp', lport: port, peer, pport, t: nowUs() });
        }
      });
      const done = () => { if (who) { out({ ev: 'close', ...who, proto: 'tcp', lport: port, peer, pport, t: nowUs() }); who = undefined; } };
      s.on('end', () => { done(); s.end(); });
      s.on('close', done);
      s.on('error', () => undefined);
    }).listen(port, '0.0.0.0');
  }
  for (const port of udpPorts) {
    const sock = createSocket('udp4');
    const seen = new Map<string, { id: string; host: string; peer: string; pport: number; last: number }>();
    sock.on('message', (m, r) => {
      const [id, host, last] = m.toString().trim().split(' ');
      const k = `${r.address}:${r.port}:${id}`;
      if (!seen.has(k)) {
        seen.set(k, { id, host, peer: r.address, pport: r.port, last: nowUs() });
        out({ ev: 'open', id, host, proto: 'udp', lport: port, peer: r.address, pport: r.port, t: nowUs() });
      }
      sock.send('ok', r.port, r.address);
      if (last === 'last') out({ ev: 'close', id, host, proto: 'udp', lport: port, peer: r.address, pport: r.port, t: nowUs() });
    });
    sock.bind(port, '0.0.0.0');
  }
  out({ ev: 'ready' });
}

/**
 * One planned connection. The client logs `start` before it sends anything
 * and `closed` once nothing more can pass (TCP: the socket closed; UDP: the
 * answer to its last datagram came, or 1 s passed): the flow was active,
 * at most, between the two; the server's `open` and `close` lines bound
 * the time it was active at least.
 */
async function runItem(p: PlanItem): Promise<void> {
  if (p.proto === 'tcp') {
    await new Promise<void>((resolve) => {
      out({ ev: 'start', id: p.id, t: nowUs() });
      const s = connect({ host: p.dst, port: p.dport, localAddress: p.host }, () => {
        s.write(`${p.id} ${p.host}\n`);
        out({ ev: 'connected', id: p.id, t: nowUs() });
        setTimeout(() => s.end(), p.hold);
      });
      s.on('data', () => undefined);
      s.on('close', () => { out({ ev: 'closed', id: p.id, t: nowUs() }); resolve(); });
      s.on('error', (e) => { out({ ev: 'error', id: p.id, error: e.message }); resolve(); });
    });
    return;
  }
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, p.host, () => r()));
  const n = 4;
  let answers = 0;
  let lastAnswered: () => void = () => undefined;
  sock.on('message', () => { if (++answers >= n) lastAnswered(); });
  out({ ev: 'start', id: p.id, t: nowUs() });
  for (let i = 0; i < n; i++) {
    sock.send(`${p.id} ${p.host} ${i === n - 1 ? 'last' : 'more'}`, p.dport, p.dst);
    if (i < n - 1) await sleep(p.hold / (n - 1));
  }
  await new Promise<void>((r) => { lastAnswered = r; if (answers >= n) r(); setTimeout(r, 1000); });
  sock.close();
  out({ ev: 'closed', id: p.id, t: nowUs() });
}

async function client(plan: PlanItem[]): Promise<void> {
  const t0 = Date.now();
  await Promise.all(plan.map(async (p) => {
    await sleep(Math.max(0, t0 + p.at - Date.now()));
    await runItem(p);
  }));
  out({ ev: 'done' });
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'server') server(JSON.parse(args[0]) as number[], JSON.parse(args[1]) as number[]);
else if (mode === 'client') void client(JSON.parse(args[0]) as PlanItem[]);
