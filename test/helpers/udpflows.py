#!/usr/bin/env python3
"""Counted UDP flows for the store tests: N datagrams, each its own 5-tuple
(a conntrack entry each), at RATE per second (0: as fast as it can), to DST.
Prints "sent I" every STEP datagrams and "done N" at the end, flushed, so a
test can act at a known point.
usage: udpflows.py DST N RATE [STEP]"""
import socket
import sys
import time


def main():
    dst, n, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    step = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    sock = None
    t0 = time.monotonic()
    for i in range(n):
        if i % 30000 == 0:
            # a new source port for every 30000 destination ports: distinct tuples
            if sock:
                sock.close()
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(('0.0.0.0', 0))
        sock.sendto(b'x', (dst, 20000 + i % 30000))
        if rate > 0:
            ahead = t0 + (i + 1) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        if (i + 1) % step == 0:
            print('sent', i + 1, flush=True)
    print('done', n, flush=True)


main()
