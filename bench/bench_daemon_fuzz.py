"""Fuzz a real daemon with hostile messages and check that it stays up and refuses what it must.

    PYTHONPATH=backend:protocol python bench/bench_daemon_fuzz.py [--messages 10000] [--seed 1]

Categories (each message gets exactly one reply, which is counted): random multipart garbage,
tampered signatures (one bit flipped in a signed message: MUST be 401), replays (a message already
accepted, sent again: MUST be 401), correctly signed but malformed messages (garbage JSON, wrong
types, unknown types, huge or deeply nested fields, bad buffer descriptors). Afterwards ``ping``
MUST answer. Prints counts, the reply-code histogram and the rate.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import tempfile
import time

import zmq

from coolcolor.daemon.testing import DaemonProcess
from coolcolor_protocol import DELIMITER, Session, endpoint, read_connection_file, split_identities
from coolcolor_protocol.wire import dumps, sign


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as work:
        daemon = DaemonProcess(work).start()
        try:
            return run(daemon, rng, args.messages)
        finally:
            daemon.stop(30)


def run(daemon: DaemonProcess, rng: random.Random, total: int) -> int:
    info = read_connection_file(daemon.connection_file)
    key = info["key"].encode()
    session = Session(key)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint(info))
    to = info["session"]

    def build(msg_type: str, content: dict) -> list[bytes]:
        return [bytes(f) for f in session.build(msg_type, content, to=to)[1]]

    def signed_raw(header: bytes, content: bytes, bufs: list[bytes] = ()) -> list[bytes]:
        return [DELIMITER, sign(key, [DELIMITER, header, content, *bufs]), header, content, *bufs]

    def header(**over) -> dict:
        session._seq += 1
        h = {"v": "1.0", "msg_id": f"{rng.getrandbits(128):032x}", "session": session.session_id,
             "seq": session._seq, "ts": time.time(), "type": "status", "parent": None, "to": to, "buffers": []}
        h.update(over)
        return h

    accepted: list[list[bytes]] = []

    def make(category: str) -> list[bytes]:
        if category == "garbage":
            return [rng.randbytes(rng.randrange(0, 64)) for _ in range(rng.randrange(1, 10))]
        if category == "tampered":
            frames = build("status", {"job_id": f"{rng.getrandbits(128):032x}"})
            i = rng.randrange(1, len(frames))
            data = bytearray(frames[i])
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            frames[i] = bytes(data)
            return frames
        if category == "replay":
            return rng.choice(accepted)
        # signed but malformed
        kind = rng.randrange(10)
        if kind == 0:
            return signed_raw(dumps(header()), rng.randbytes(rng.randrange(1, 200)))
        if kind == 1:
            return signed_raw(rng.randbytes(rng.randrange(1, 200)), b"{}")
        if kind == 2:
            return signed_raw(dumps(header()), b"[" * 50_000 + b"]" * 50_000)
        if kind == 3:
            return signed_raw(dumps(header(seq=rng.choice([0, -1, "1", 1.5, None]))), b"{}")
        if kind == 4:
            return build(rng.choice(["launch", "submit_reply", "progress", "error"]), {})
        if kind == 5:
            return build("submit", rng.choice([
                {"key": "k", "job": {"source": "x" * 10_000, "output_dir": "/tmp"}},
                {"key": 5, "job": {}}, {"key": "k", "job": {"source": "/nope.%04d.exr", "output_dir": "/tmp",
                                                             "first": 5, "last": 1}},
                {"key": "k", "job": {"source": "/a.png", "output_dir": "/tmp", "prompt": "\x00" * 10}},
                {"key": "k" * 1000, "job": None}, {"job": {"keyframes": list(range(1000))}},
            ]))
        if kind == 6:
            return build(rng.choice(["status", "cancel", "attach"]), rng.choice([
                {"job_id": rng.random()}, {"job_id": "../" * 20}, {"job_id": "0" * 32, "have": [[9, 1]]},
                {"job_id": "0" * 32, "have": "all"}, {}]))
        if kind == 7:
            h = header(buffers=[{"dtype": rng.choice([">f4", "<f8", "object", "<f4"]), "shape": [3, 3]}])
            return signed_raw(dumps(h), b"{}", [rng.randbytes(rng.choice([36, 35, 0]))])
        if kind == 8:  # unsigned frames appended to a signed message: the signature no longer matches (401)
            frames = build("ping", {})
            return frames + [rng.randbytes(4) for _ in range(rng.randrange(1, 30))]
        return build("list_jobs", {"states": rng.choice([["x"], "queued", [None]]), "limit": rng.choice([0, -5, 10**9])})

    # a pool of accepted messages to replay
    pool = [build("ping", {}) for _ in range(200)]
    for frames in pool:
        sock.send_multipart(frames)
    for _ in pool:
        if not sock.poll(10_000):
            raise SystemExit("daemon did not answer the warm-up pings")
        sock.recv_multipart()
    accepted.extend(pool)

    categories = ["garbage", "tampered", "replay", "malformed"]
    sent = collections.Counter()
    codes: dict[str, collections.Counter] = {c: collections.Counter() for c in categories}
    t0 = time.perf_counter()
    batch = 200
    for start in range(0, total, batch):
        # one category per batch, all replies read before the next: exact attribution even though
        # submit replies (answered by the daemon's aux thread) may overtake others within a batch
        plan = [rng.choice(categories)] * min(batch, total - start)
        for cat in plan:
            sock.send_multipart(make(cat))
            sent[cat] += 1
        for cat in plan:
            if not sock.poll(20_000):
                print(f"FAIL: no reply after {sum(sent.values())} messages", file=sys.stderr)
                return 1
            _, rest = split_identities(sock.recv_multipart(), router=False)
            reply = session.unpack(rest)
            codes[cat][reply.content.get("code", reply.type)] += 1
    elapsed = time.perf_counter() - t0
    sock.close(0)
    with daemon.client(timeout=5) as c:
        ping = c.ping()
        stats = c.request("ping", {})["stats"]
    print(f"messages fuzzed: {sum(sent.values())} in {elapsed:.1f} s ({sum(sent.values()) / elapsed:.0f}/s), "
          f"plus {len(pool)} warm-up pings")
    for cat in categories:
        print(f"  {cat:<9} sent {sent[cat]:>6}  replies by code: {dict(codes[cat])}")
    print(f"daemon alive: ping {ping * 1000:.1f} ms; daemon counters: {stats}")
    ok = (codes["tampered"][401] == sent["tampered"] and codes["replay"][401] == sent["replay"]
          and all(sum(codes[c].values()) == sent[c] for c in categories))
    print(f"tampered rejected {codes['tampered'][401]}/{sent['tampered']} (100 % required); "
          f"replays rejected {codes['replay'][401]}/{sent['replay']}; {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
