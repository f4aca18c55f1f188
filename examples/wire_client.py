#!/usr/bin/env python3
"""A client of the key-value service written from docs/wire.md alone.

It asks the master for the cluster (GetCluster -> ClusterInfo), sends a put,
a get, a compare-and-swap and a delete to the leader (to any replica when the
protocol is leaderless), follows "not leader" hints, retries with the same
(client, seq) on a timeout, and reads every replica's status and state digest.
Only one shard is handled: a sharded deployment also needs XXH3 (docs/wire.md,
"Replica ids and shards").

    python3 examples/wire_client.py MASTER_HOST:PORT [KEY]

It prints one line per exchange and ends with "wire example passed"; any
answer it does not expect ends it with exit status 1. A test
(server/tests/wire_example.rs) runs it against a live cluster.
"""

import os
import socket
import struct
import sys


class Reader:
    """Decodes a frame body field by field, in table order, nothing between."""

    def __init__(self, body):
        self.b = body
        self.at = 0

    def take(self, n):
        if self.at + n > len(self.b):
            raise ValueError("body too short")
        out = self.b[self.at:self.at + n]
        self.at += n
        return out

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("<H", self.take(2))[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def bool(self):
        v = self.u8()
        if v > 1:
            raise ValueError("bad bool")
        return v == 1

    def bytes(self):
        return self.take(self.u32())

    def string(self):
        return self.bytes().decode("utf-8")

    def option(self, read):
        flag = self.u8()
        if flag > 1:
            raise ValueError("bad option flag")
        return read() if flag == 1 else None

    def vec(self, read):
        return [read() for _ in range(self.u32())]

    def done(self):
        if self.at != len(self.b):
            raise ValueError(f"{len(self.b) - self.at} trailing bytes")


def u64(v):
    return struct.pack("<Q", v)


def blob(b):
    return struct.pack("<I", len(b)) + b


def option(b):
    return b"\x00" if b is None else b"\x01" + blob(b)


def send(sock, code, body):
    sock.sendall(struct.pack("<BI", code, len(body)) + body)


def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("connection closed")
        out += chunk
    return out


def recv(sock):
    code, length = struct.unpack("<BI", recv_exact(sock, 5))
    if length > 16 << 20:
        raise ValueError(f"frame of {length} bytes")
    return code, recv_exact(sock, length)


def connect(host, port, timeout=2.0):
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    return s


GET_CLUSTER, CLUSTER_INFO = 0x15, 0x16
PROPOSE, PROPOSE_REPLY = 0x01, 0x02
STATUS_REQUEST, STATUS_REPLY = 0x03, 0x04
OPS = {"noop": 0, "put": 1, "get": 2, "delete": 3, "cas": 4}
STATUS = ["ok", "not leader", "unavailable", "stale", "too large", "failed"]


def cluster_info(master):
    host, port = master.rsplit(":", 1)
    with connect(host, int(port)) as s:
        nonce = 41
        send(s, GET_CLUSTER, u64(nonce))
        code, body = recv(s)
        if code != CLUSTER_INFO:
            raise ValueError(f"expected ClusterInfo, got code {code:#x}")
        r = Reader(body)

        def addr():
            return {
                "id": r.u8(),
                "host": r.string(),
                "peer_port": r.u16(),
                "client_port": r.u16(),
                "alive": r.bool(),
            }

        info = {
            "nonce": r.u64(),
            "n": r.u8(),
            "complete": r.bool(),
            "leader": r.option(r.u8),
            "replicas": r.vec(addr),
            "shards": r.u8(),
            "leaders": r.vec(lambda: r.option(r.u8)),
            "protocol": r.string(),
            "reply_after_exec": r.bool(),
        }
        r.done()
        if info["nonce"] != nonce:
            raise ValueError("nonce not echoed")
        return info


def decode_propose_reply(body):
    r = Reader(body)
    reply = {
        "client": r.u64(),
        "seq": r.u64(),
        "status": r.u8(),
        "leader": r.option(r.u8),
        # Sent with every status; meaningful when the status is ok.
        "value": r.option(r.bytes),
        "flag": r.bool(),
    }
    r.done()
    return reply


class Session:
    """One client session: an id, rising sequence numbers, and acked_below."""

    def __init__(self, info):
        self.info = info
        self.client = int.from_bytes(os.urandom(8), "little") or 1
        self.next_seq = 1
        self.acked_below = 1
        self.target = info["leader"] if info["leader"] is not None else 0
        self.sock = None
        self.hints_followed = 0

    def addr(self, rid):
        a = next(a for a in self.info["replicas"] if a["id"] == rid)
        return a["host"], a["client_port"]

    def call(self, op, key, value=b"", expected=None):
        seq = self.next_seq
        self.next_seq += 1
        body = (
            u64(self.client) + u64(seq) + u64(self.acked_below)
            + bytes([OPS[op]]) + blob(key) + blob(value) + option(expected)
        )
        for _attempt in range(20):
            try:
                if self.sock is None:
                    self.sock = connect(*self.addr(self.target))
                send(self.sock, PROPOSE, body)
                while True:
                    code, reply_body = recv(self.sock)
                    if code != PROPOSE_REPLY:
                        raise ValueError(f"expected ProposeReply, got {code:#x}")
                    reply = decode_propose_reply(reply_body)
                    if (reply["client"], reply["seq"]) == (self.client, seq):
                        break
            except (OSError, ConnectionError):
                # No answer: the command may have run; retry it unchanged.
                self.drop()
                self.target = (self.target + 1) % self.info["n"]
                continue
            status = reply["status"]
            if status == 0:
                # Every seq below seq + 1 is answered: results may be forgotten.
                self.acked_below = seq + 1
                return reply
            if status == 1 and reply["leader"] is not None:
                # Not applied *yet*: retry the same seq at the hinted leader.
                self.drop()
                self.target = reply["leader"]
                self.hints_followed += 1
                continue
            if status in (1, 2):
                self.drop()
                self.target = (self.target + 1) % self.info["n"]
                continue
            raise ValueError(f"{op} answered {STATUS[status]}")
        raise TimeoutError(f"{op} {key!r} got no answer")

    def drop(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def status(host, port):
    with connect(host, port) as s:
        send(s, STATUS_REQUEST, u64(7))
        code, body = recv(s)
        if code != STATUS_REPLY:
            raise ValueError(f"expected StatusReply, got {code:#x}")
        r = Reader(body)
        names = ["nonce", "replica", "role", "ballot", "leader", "commit_index",
                 "executed", "log_len", "applied", "duplicates", "digest_hi",
                 "digest_lo", "catchup_fetched", "replayed", "keys"]
        reads = [r.u64, r.u8, r.u8, r.u64, lambda: r.option(r.u8), r.u64,
                 r.u64, r.u64, r.u64, r.u64, r.u64, r.u64, r.u64, r.u64, r.u64]
        st = {n: f() for n, f in zip(names, reads)}
        r.done()
        st["digest"] = f"{st['digest_hi']:016x}{st['digest_lo']:016x}"
        return st


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    info = cluster_info(sys.argv[1])
    key = (sys.argv[2] if len(sys.argv) > 2 else "wire-example").encode()
    print(f"cluster: protocol {info['protocol']}, {info['n']} replicas, leader "
          f"{info['leader']}, replies after execution: {info['reply_after_exec']}")
    if info["shards"] != 1 or not info["complete"]:
        raise ValueError("this example needs one complete shard")
    s = Session(info)
    if info["protocol"] != "epaxos":
        leader = info["leader"]
        if leader is None:
            # The master has not heard of one yet: ask the replicas (role 2).
            for a in info["replicas"]:
                if status(a["host"], a["client_port"])["role"] == 2:
                    leader = a["id"]
        # Start at a follower on purpose, to show the not-leader hint at work.
        s.target = ((leader or 0) + 1) % info["n"]
    first = f"c{s.client:x}-1".encode()
    s.call("put", key, first)
    print(f"put {key.decode()} = {first.decode()} (not-leader hints followed: {s.hints_followed})")
    got = s.call("get", key)
    if got["value"] != first:
        raise ValueError(f"get read {got['value']!r}, wanted {first!r}")
    print(f"get {key.decode()} -> {got['value'].decode()}")
    second = f"c{s.client:x}-2".encode()
    swapped = s.call("cas", key, second, expected=first)
    if not swapped["flag"]:
        raise ValueError("cas did not swap")
    print(f"cas {key.decode()}: {first.decode()} -> {second.decode()} swapped")
    again = s.call("cas", key, b"never", expected=first)
    if again["flag"] or again["value"] != second:
        raise ValueError(f"a stale cas swapped or read {again['value']!r}")
    print(f"cas {key.decode()} expecting {first.decode()}: not swapped, found {again['value'].decode()}")
    s.call("delete", key)
    gone = s.call("get", key)
    if gone["value"] is not None:
        raise ValueError(f"read {gone['value']!r} after the delete")
    print(f"delete {key.decode()}; get -> absent")
    last = f"c{s.client:x}-3".encode()
    s.call("put", key, last)
    print(f"final {key.decode()} = {last.decode()}")
    s.drop()
    for a in info["replicas"]:
        st = status(a["host"], a["client_port"])
        print(f"replica {a['id']}: executed {st['executed']}, digest {st['digest']}")
    print("wire example passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, OSError, TimeoutError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
