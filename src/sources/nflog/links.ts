// Interface names by index, as the packet's own namespace has them: an
// rtnetlink link dump at start, then the link notifications (RTNLGRP_LINK)
// keep it current, on one socket opened in that namespace.
import { native, type NativeNetlinkSocket } from '../../netlink/native.js';
import { NETLINK_ROUTE, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_HDRLEN } from '../../netlink/constants.js';
import { MALFORMED, Nla, u16, u32 } from '../../netlink/attr.js';

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
const RTNLGRP_LINK = 1;
const IFINFOMSG_LEN = 16;
const IFLA_IFNAME = 3;

const cur = new Nla();

export class LinkNames {
  private readonly names = new Map<number, string>();
  private sock: NativeNetlinkSocket | undefined;
  private buf: Buffer | undefined;
  private dumping = false;
  private lastDump = 0;
  private waiters: Array<() => void> = [];

  constructor(netns?: string) {
    this.sock = new (native().NetlinkSocket)({ protocol: NETLINK_ROUTE, netns, groups: 0, slotSize: 32768, slots: 16 });
    try {
      this.sock.addMembership(RTNLGRP_LINK);
      this.buf = this.sock.start((len) => this.onBatch(len), () => { /* names are a convenience: a failing socket leaves them as they are */ });
      this.dump();
    } catch (e) {
      this.sock.close();
      this.sock = undefined;
      throw e;
    }
  }

  /** resolves once the first dump is complete */
  ready(): Promise<void> {
    if (!this.dumping) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  /** the name of interface `index` ('' if unknown: then the table is read again, at most once a second) */
  name(index: number): string {
    const n = this.names.get(index);
    if (n !== undefined) return n;
    const now = Date.now();
    if (!this.dumping && now - this.lastDump > 1000) this.dump();
    return '';
  }

  private dump(): void {
    if (!this.sock) return;
    const b = Buffer.alloc(NLMSG_HDRLEN + IFINFOMSG_LEN);
    b.writeUInt32LE(b.length, 0);
    b.writeUInt16LE(RTM_GETLINK, 4);
    b.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
    b.writeUInt32LE(Date.now() >>> 0, 8);
    this.dumping = true;
    this.lastDump = Date.now();
    this.sock.send(b);
  }

  private onBatch(len: number): void {
    const b = this.buf!;
    let o = 0;
    while (o + NLMSG_HDRLEN <= len) {
      const mlen = u32(b, o);
      if (mlen < NLMSG_HDRLEN || o + mlen > len) break;
      const type = u16(b, o + 4);
      if (type === NLMSG_DONE) {
        this.dumping = false;
        const w = this.waiters;
        this.waiters = [];
        for (const f of w) f();
      } else if ((type === RTM_NEWLINK || type === RTM_DELLINK) && mlen >= NLMSG_HDRLEN + IFINFOMSG_LEN) {
        const index = u32(b, o + NLMSG_HDRLEN + 4) | 0;
        // a removed interface keeps its name: packets logged just before
        // may still be on their way (a new one with its index replaces it)
        if (type === RTM_NEWLINK) {
          try {
            const a = cur.reset(b, o + NLMSG_HDRLEN + IFINFOMSG_LEN, o + mlen);
            while (a.next()) if (a.type === IFLA_IFNAME) { this.names.set(index, a.str()); break; }
          } catch (e) {
            if (e !== MALFORMED) throw e;
          }
        }
      }
      o += (mlen + 3) & ~3;
    }
  }

  close(): void {
    this.sock?.close();
    this.sock = undefined;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
