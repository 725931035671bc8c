#!/usr/bin/env python3
"""A tiny authoritative DNS server for tests: answers A questions for one name with one address over UDP, an
empty answer for its other types, and NXDOMAIN for every other name. Writes one line per question to LOG.

    dns_server.py LISTEN_ADDR NAME ADDRESS LOG
"""
import socket
import struct
import sys


def question(msg):
    """The question's name (lower case), type and the offset past it; None if malformed."""
    at, labels = 12, []
    while at < len(msg):
        n = msg[at]
        if n == 0:
            if at + 5 > len(msg):
                return None
            qtype, = struct.unpack(">H", msg[at + 1:at + 3])
            return ".".join(labels).lower(), qtype, at + 5
        labels.append(msg[at + 1:at + 1 + n].decode("ascii", "replace"))
        at += 1 + n
    return None


def main():
    listen, name, address = sys.argv[1], sys.argv[2].lower().rstrip("."), sys.argv[3]
    log = open(sys.argv[4], "a", buffering=1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((listen, 53))
    print("listening", file=log)
    while True:
        msg, peer = sock.recvfrom(512)
        if len(msg) < 12:
            continue
        q = question(msg)
        if q is None:
            continue
        qname, qtype, end = q
        (qid,) = struct.unpack(">H", msg[:2])
        known = qname == name
        answers = b""
        if known and qtype == 1:
            answers = struct.pack(">HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(address)
        flags = 0x8580 if known else 0x8583  # a response, authoritative, recursion desired and available
        header = struct.pack(">HHHHHH", qid, flags, 1, 1 if answers else 0, 0, 0)
        sock.sendto(header + msg[12:end] + answers, peer)
        print(f"{peer[0]} asked {qname} type {qtype}", file=log)


if __name__ == "__main__":
    main()
