#!/usr/bin/env python3
"""Sends leak probes every 50 ms for SECONDS: ICMP echo, UDP, a DNS query to port 53 and a TCP SYN, to each
address given (IPv4 or IPv6). Run as root inside the namespace under test; prints how many probes it tried and
how many the host refused at once (a kill switch's reject), as JSON. What reached the wire is for the capture
to say, not this script."""

import json
import socket
import struct
import sys
import time

INTERVAL = 0.05
DNS_QUERY = struct.pack("!HHHHHH", 0x4C4B, 0x0100, 1, 0, 0, 0) + b"\x07example\x03com\x00" + struct.pack("!HH", 1, 1)


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo(v6: bool, seq: int) -> bytes:
    kind = 128 if v6 else 8
    body = struct.pack("!HH", 0x4C4B, seq & 0xFFFF) + b"culvert-leak-probe"
    head = struct.pack("!BBH", kind, 0, 0)
    if v6:
        return head + body  # the kernel fills in ICMPv6 checksums of raw sockets
    return struct.pack("!BBH", kind, 0, checksum(head + body)) + body


def main() -> None:
    seconds = float(sys.argv[1])
    targets = sys.argv[2:]
    tried = refused = 0
    end = time.monotonic() + seconds
    seq = 0
    while time.monotonic() < end:
        seq += 1
        for addr in targets:
            v6 = ":" in addr
            family = socket.AF_INET6 if v6 else socket.AF_INET
            attempts = [
                ("icmp", lambda: raw(family, v6, addr, seq)),
                ("udp", lambda: datagram(family, addr, 9, b"culvert-leak-probe")),
                ("dns", lambda: datagram(family, addr, 53, DNS_QUERY)),
                ("tcp", lambda: syn(family, addr, 80)),
            ]
            for _, attempt in attempts:
                tried += 1
                try:
                    attempt()
                except OSError:
                    refused += 1
        time.sleep(INTERVAL)
    print(json.dumps({"tried": tried, "refused": refused}))


def raw(family: int, v6: bool, addr: str, seq: int) -> None:
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    with socket.socket(family, socket.SOCK_RAW, proto) as s:
        s.sendto(echo(v6, seq), (addr, 0))


def datagram(family: int, addr: str, port: int, payload: bytes) -> None:
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.sendto(payload, (addr, port))


def syn(family: int, addr: str, port: int) -> None:
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setblocking(False)
        err = s.connect_ex((addr, port))
        if err not in (0, 115):  # EINPROGRESS: the SYN is on its way
            raise OSError(err, "connect")


if __name__ == "__main__":
    main()
