// Real traffic between test hosts, bounded in count and time.
import { ADDR, RAW_SENDER, type Topology } from './netns.js';

/** One TCP connection cli -> srv:port carrying `data`, closed by both ends. */
export async function tcp(t: Topology, port: number, v6 = false, data = 'hello\n', dst?: string, dport?: number): Promise<void> {
  const srv = t.spawn(t.srv, ['timeout', '5', 'ncat', ...(v6 ? ['-6'] : []), '-l', String(port), '--recv-only']);
  await new Promise((r) => setTimeout(r, 150));
  t.exec(t.cli, ['timeout', '5', 'ncat', '--send-only', dst ?? (v6 ? ADDR.srv6 : ADDR.srv), String(dport ?? port)], { input: data, allowFail: true });
  await new Promise<void>((resolve) => {
    if (srv.exitCode !== null) resolve(); else srv.on('exit', () => resolve());
  });
}

/** One UDP datagram cli -> srv:port (and an answer back if `reply`). */
export async function udp(t: Topology, port: number, v6 = false, reply = true): Promise<void> {
  const srv = reply ? t.spawn(t.srv, ['timeout', '3', 'ncat', ...(v6 ? ['-6'] : []), '-u', '-l', String(port), '-c', 'echo pong']) : undefined;
  if (srv) await new Promise((r) => setTimeout(r, 150));
  t.exec(t.cli, ['timeout', '3', 'ncat', '-u', '-w1', v6 ? ADDR.srv6 : ADDR.srv, String(port)], { input: 'ping\n', allowFail: true });
  if (srv) await t.stop(srv);
}

export function ping(t: Topology, v6 = false, dst?: string): void {
  t.exec(t.cli, ['ping', ...(v6 ? ['-6'] : []), '-c', '1', '-W', '1', dst ?? (v6 ? ADDR.srv6 : ADDR.srv)], { allowFail: true });
}

export function gre(t: Topology): void {
  t.exec(t.cli, ['python3', RAW_SENDER, 'gre', ADDR.srv]);
}

/** One raw packet of any IP protocol number (DCCP 33, or one no tracker knows). */
export function rawProto(t: Topology, proto: number): void {
  t.exec(t.cli, ['python3', RAW_SENDER, 'proto', ADDR.srv, String(proto)]);
}

export function sctp(t: Topology, sport: number, dport: number): void {
  t.exec(t.cli, ['python3', RAW_SENDER, 'sctp', ADDR.srv, String(sport), String(dport)]);
}

/** Short timeouts in the router so entries expire within ~1 s. */
export function shortTimeouts(t: Topology): void {
  t.sysctl(t.rtr, {
    'net.netfilter.nf_conntrack_udp_timeout': '1',
    'net.netfilter.nf_conntrack_udp_timeout_stream': '1',
    'net.netfilter.nf_conntrack_icmp_timeout': '1',
    'net.netfilter.nf_conntrack_icmpv6_timeout': '1',
    'net.netfilter.nf_conntrack_tcp_timeout_time_wait': '1',
    'net.netfilter.nf_conntrack_tcp_timeout_close': '1',
    'net.netfilter.nf_conntrack_tcp_timeout_fin_wait': '1',
    'net.netfilter.nf_conntrack_tcp_timeout_close_wait': '1',
    'net.netfilter.nf_conntrack_tcp_timeout_last_ack': '1',
    'net.netfilter.nf_conntrack_generic_timeout': '1',
    'net.netfilter.nf_conntrack_gre_timeout': '1',
    'net.netfilter.nf_conntrack_sctp_timeout_closed': '1',
  });
}

/**
 * Makes the kernel destroy every expired entry now: a table dump evicts
 * the expired entries it walks over (portid 0: a kernel-originated DESTROY).
 */
export async function reapExpired(t: Topology): Promise<void> {
  await new Promise((r) => setTimeout(r, 2200));
  t.exec(t.rtr, ['conntrack', '-L'], { allowFail: true });
}

/**
 * The router ruleset most end-to-end tests use: masquerade out, a DNAT port
 * forward (router:80 -> server:8080), and mark 0x10 + zone 5 on UDP to 7777.
 */
export function mixedRules(t: Topology): string {
  return `table inet ctt {
  chain prerouting { type nat hook prerouting priority -100; ip daddr ${ADDR.rtrIn} tcp dport 80 dnat ip to ${ADDR.srv}:8080; }
  chain forward { type filter hook forward priority 0; policy accept; udp dport 7777 ct mark set 0x10; }
  chain postrouting { type nat hook postrouting priority 100; oifname "${t.prefix}r1" masquerade; }
}
table ip ctz {
  chain pre { type filter hook prerouting priority -300; udp dport 7777 ct zone set 5; }
}`;
}

/** One flow of each kind: tcp, udp, icmp (v4 and v6), gre, sctp, DNAT, zone+mark, DCCP, an unknown protocol. */
export async function mixedTraffic(t: Topology): Promise<void> {
  await tcp(t, 8080);
  await tcp(t, 8081, true);
  await udp(t, 5353);
  await udp(t, 5354, true);
  ping(t);
  ping(t, true);
  gre(t);
  sctp(t, 5000, 6000);
  await tcp(t, 8080, false, 'dnat\n', ADDR.rtrIn, 80);
  await udp(t, 7777, false, false);
  rawProto(t, 33); // DCCP: tracked by the generic tracker on this kernel
  rawProto(t, 253); // a number no tracker knows
}
