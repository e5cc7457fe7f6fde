#!/usr/bin/env python3
"""Sends one raw GRE or SCTP-INIT packet (for protocols this kernel has no
sockets or tunnels for; conntrack on the router still tracks them).
usage: rawsend.py gre DST | rawsend.py sctp DST SPORT DPORT | rawsend.py proto DST NUM"""
import socket
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def main():
    kind, dst = sys.argv[1], sys.argv[2]
    if kind == 'gre':
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
        # GRE version 0, protocol IPv4, carrying a dummy 20-byte header
        s.sendto(struct.pack('!HH', 0, 0x0800) + b'\x45' + b'\0' * 19, (dst, 0))
    elif kind == 'sctp':
        sport, dport = int(sys.argv[3]), int(sys.argv[4])
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 132)
        init = struct.pack('!BBHIIHHI', 1, 0, 20, 0x11223344, 65535, 1, 1, 0x01020304)
        crc = crc32c(struct.pack('!HHII', sport, dport, 0, 0) + init)
        s.sendto(struct.pack('!HHI', sport, dport, 0) + struct.pack('<I', crc) + init, (dst, 0))
    elif kind == 'proto':
        # any IP protocol number, 8 bytes of payload (conntrack's generic tracker)
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, int(sys.argv[3]))
        s.sendto(struct.pack('!HHHH', 4000, 5000, 8, 0), (dst, 0))
    else:
        sys.exit('unknown kind ' + kind)


main()
