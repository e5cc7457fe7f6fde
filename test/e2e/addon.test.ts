// The native netlink socket's contract: errors are JS errors with errno
// names, closing is clean (no callbacks after close, no leaked fds), the
// namespace switch happens off the JS thread, the buffer size is reported.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { native } from '../../src/netlink/native.js';
import { NETLINK_NETFILTER } from '../../src/netlink/constants.js';
import { dumpConntrack, dumpRequest } from '../../src/sources/conntrack/socket.js';
import { Topology } from '../helpers/netns.js';
import { ping } from '../helpers/traffic.js';

const fds = () => readdirSync('/proc/self/fd').length;
const ns = () => readlinkSync('/proc/self/ns/net');
const { NetlinkSocket } = native();

describe('native netlink socket', { timeout: 60_000 }, () => {
  const t = new Topology('ad');
  before(() => t.up());
  after(() => t.down());

  it('opens and closes without leaking descriptors', () => {
    const before = fds();
    for (let i = 0; i < 300; i++) {
      const s = new NetlinkSocket({ protocol: NETLINK_NETFILTER, netns: i % 2 ? t.rtr : undefined });
      if (i % 3 === 0) s.start(() => {}, () => {});
      s.close();
      s.close(); // idempotent
    }
    assert.equal(fds(), before);
  });

  it('opens inside a namespace without moving the JS thread', async () => {
    const mine = ns();
    ping(t);
    const table = async (netns?: string) => {
      const entries: string[] = [];
      await dumpConntrack({ netns }, (ev) => entries.push(ev.orig.src));
      return entries;
    };
    assert.ok((await table(t.rtr)).includes('10.99.1.2'), 'the socket reads the router namespace');
    assert.equal(ns(), mine, 'this thread stayed in its namespace');
    assert.ok(!(await table()).includes('10.99.1.2'), 'and our own namespace does not have that entry');
  });

  it('reports errors as JS errors with errno names', () => {
    assert.throws(() => new NetlinkSocket({ protocol: NETLINK_NETFILTER, netns: 'no-such-ns' }),
      (e: Error & { code: string; syscall: string }) => e.code === 'ENOENT' && e.syscall === 'open' && /ENOENT/.test(e.message));
    assert.throws(() => new NetlinkSocket({ protocol: 999 }), (e: Error & { code: string }) => e.code === 'EPROTONOSUPPORT');
    const s = new NetlinkSocket({ protocol: NETLINK_NETFILTER });
    s.close();
    assert.throws(() => s.addMembership(1), (e: Error & { code: string }) => e.code === 'ERR_SOCKET_CLOSED');
    assert.throws(() => s.attachFilter(Buffer.alloc(3)), /closed/);
  });

  it('reliable delivery sets NETLINK_BROADCAST_ERROR and NETLINK_NO_ENOBUFS on the event socket', async () => {
    const { ConntrackEventSource } = await import('../../src/sources/conntrack/socket.js');
    const { emptyFilter } = await import('../../src/sources/conntrack/filter.js');
    const { SOL_NETLINK, NETLINK_BROADCAST_ERROR, NETLINK_NO_ENOBUFS } = await import('../../src/netlink/constants.js');
    for (const reliable of [true, false]) {
      const src = new ConntrackEventSource({ netns: t.rtr, filter: emptyFilter(), reliable });
      assert.equal(src.sock.getsockoptInt(SOL_NETLINK, NETLINK_BROADCAST_ERROR), reliable ? 1 : 0);
      assert.equal(src.sock.getsockoptInt(SOL_NETLINK, NETLINK_NO_ENOBUFS), reliable ? 1 : 0);
      src.close();
    }
  });

  it('reports the receive buffer the kernel granted', () => {
    const s = new NetlinkSocket({ protocol: NETLINK_NETFILTER });
    const granted = s.setRcvbuf(8 * 1024 * 1024);
    assert.equal(granted, 16 * 1024 * 1024); // the kernel doubles the request
    assert.equal(s.getRcvbuf(), granted);
    s.close();
  });

  it('no callback after close, even when closed from inside a batch', async () => {
    const s = new NetlinkSocket({ protocol: NETLINK_NETFILTER, netns: t.rtr });
    s.addMembership(1);
    let calls = 0;
    let afterClose = 0;
    let closed = false;
    s.start(() => {
      if (closed) afterClose++;
      calls++;
      closed = true;
      s.close();
    }, () => {});
    for (let i = 0; i < 5; i++) ping(t);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(calls, 1);
    assert.equal(afterClose, 0);
  });

  it('delivers a dump in batches and counts datagrams and bytes', async () => {
    for (let i = 0; i < 3; i++) ping(t);
    const s = new NetlinkSocket({ protocol: NETLINK_NETFILTER, netns: t.rtr });
    let bytes = 0;
    let batches = 0;
    await new Promise<void>((resolve) => {
      let buf: Buffer;
      buf = s.start((len) => {
        batches++;
        bytes += len;
        for (let o = 0; o + 16 <= len; o += (buf.readUInt32LE(o) + 3) & ~3) {
          if (buf.readUInt16LE(o + 4) === 3) resolve();
        }
      }, () => resolve());
      s.send(dumpRequest());
    });
    const st = s.stats();
    s.close();
    assert.ok(batches >= 1 && st.datagrams >= 1);
    assert.equal(st.bytes, bytes);
    assert.equal(st.enobufs, 0);
    assert.equal(st.kernelDrops, 0);
  });
});
