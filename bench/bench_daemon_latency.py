"""Latency figures of the daemon and the wire format.

    PYTHONPATH=backend:protocol python bench/bench_daemon_latency.py [--pings 200] [--cancels 5]

1. ``ping`` round trip while a job runs (the worker busy denoising on every core).
2. ``cancel``: time to the ``cancel_reply`` and to the ``job_state: cancelled`` event, and how many
   diffusion steps ran after the cancel arrived (the spec says at most one).
3. Transport overhead per 1080p ab frame (1920×1080×2, half and float): sign + send + receive +
   verify + ``numpy.frombuffer`` over a real DEALER→ROUTER on 127.0.0.1, against the same bytes sent
   unsigned, and HMAC-SHA256 alone.
4. (``--inline``) the daemon's inline delivery of a real 1080p ab EXR (read back from disk, signed,
   sent), measured at the client.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import zmq

from coolcolor.daemon.testing import DaemonProcess, write_gray_sequence
from coolcolor_protocol import Session, split_identities
from coolcolor_protocol.messages import PROGRESS_MAX_HZ


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def wait_for_steps(c, job_id: str, steps: int = 2, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in c.poll(0.1):
            if m.type == "progress" and m.content.get("job_id") == job_id and (m.content.get("step") or 0) >= steps:
                return
    raise SystemExit("the job never started denoising")


def bench_daemon(work: str, pings: int, cancels: int, inline: bool) -> None:
    src = write_gray_sequence(os.path.join(work, "src"), count=4, size=64)
    with DaemonProcess(os.path.join(work, "d")) as daemon, daemon.client(timeout=10) as c:
        job_id = c.submit({"source": src, "output_dir": os.path.join(work, "busy"), "steps": 500, "window": 4,
                           "keyframes": [1]}, key="busy")["job_id"]
        wait_for_steps(c, job_id)
        lat = []
        for _ in range(pings):
            lat.append(c.ping())
            time.sleep(0.02)
        print(f"ping under load ({pings} pings while the worker denoises): p50 {statistics.median(lat) * 1e3:.2f} ms, "
              f"p95 {pct(lat, 0.95) * 1e3:.2f} ms, max {max(lat) * 1e3:.2f} ms")
        c.cancel(job_id)
        c.wait(job_id, timeout=120)

        acks, stops, after = [], [], []
        for i in range(cancels):
            job_id = c.submit({"source": src, "output_dir": os.path.join(work, f"cancel{i}"), "steps": 500,
                               "window": 4, "keyframes": [1], "seed": i + 1}, key=f"cancel-{i}")["job_id"]
            wait_for_steps(c, job_id, steps=3)
            t0 = time.perf_counter()
            msg_id = c.send("cancel", {"job_id": job_id})
            ack = stop = None
            while stop is None and time.perf_counter() - t0 < 60:
                for m in c.poll(0.01):
                    if m.parent == msg_id:
                        ack = time.perf_counter() - t0
                    if m.type == "job_state" and m.content.get("job_id") == job_id and m.content["state"] == "cancelled":
                        stop = time.perf_counter() - t0
                        after.append(m.content.get("steps_after_cancel"))
            acks.append(ack)
            stops.append(stop)
        step_s = estimate_step_time(c, src, work)
        print(f"cancel ({cancels}×): reply p50 {statistics.median(acks) * 1e3:.2f} ms (max {max(acks) * 1e3:.2f}); "
              f"worker stopped p50 {statistics.median(stops) * 1e3:.0f} ms (max {max(stops) * 1e3:.0f}); "
              f"diffusion steps after the cancel: {after}; one step of this job ≈ {step_s * 1e3:.0f} ms")
        if inline:
            bench_inline(c, work)


def estimate_step_time(c, src: str, work: str) -> float:
    """Seconds per diffusion step of the 4-frame tiny job (from progress timestamps); also prints how
    close together the daemon sent its progress events (the throttle: at most PROGRESS_MAX_HZ a second)."""
    job_id = c.submit({"source": src, "output_dir": os.path.join(work, "steptime"), "steps": 60, "window": 4,
                       "keyframes": [1], "seed": 99}, key="steptime")["job_id"]
    stamps, sent = {}, []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        done = False
        for m in c.poll(0.1):
            if m.type == "progress" and m.content.get("job_id") == job_id:
                sent.append(m.header["ts"])  # the sender's clock
                if m.content.get("step"):
                    stamps.setdefault(m.content["step"], m.header["ts"])
            done = done or (m.type == "job_state" and m.content.get("state") == "done")
        if done:
            break
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    if gaps:
        print(f"progress events: {len(sent)} in {sent[-1] - sent[0]:.1f} s; gap between two: min "
              f"{min(gaps) * 1e3:.0f} ms, p50 {statistics.median(gaps) * 1e3:.0f} ms "
              f"(throttle: >= {1e3 / PROGRESS_MAX_HZ:.0f} ms)")
    steps = sorted(stamps)
    return (stamps[steps[-1]] - stamps[steps[0]]) / max(1, steps[-1] - steps[0])


def bench_inline(c, work: str) -> None:
    import cv2

    folder = os.path.join(work, "hd")
    os.makedirs(folder, exist_ok=True)
    y, x = np.mgrid[0:1080, 0:1920]
    for f in (1, 2, 3):
        cv2.imwrite(os.path.join(folder, f"hd.{f:04d}.png"), ((x + y + 40 * f) % 256).astype(np.uint8))
    job_id = c.submit({"source": os.path.join(folder, "hd.%04d.png"), "output_dir": os.path.join(work, "hd_out"),
                       "steps": 2, "keyframes": [1]}, key="hd", subscribe=False)["job_id"]
    c.wait(job_id, timeout=600)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        c.attach(job_id, have=[], deliver="inline")
        got = 0
        while got < 3 and time.perf_counter() - t0 < 120:
            for m in c.poll(0.05):
                if m.type == "frame_done" and m.buffers:
                    arr = np.frombuffer(m.buffers[0], "<f2").reshape(m.buffer_descriptors[0]["shape"])
                    assert arr.shape == (1080, 1920, 2)
                    got += 1
        times.append((time.perf_counter() - t0) / 3)
    print(f"daemon inline delivery of a 1080p ab frame (EXR read + sign + send + verify): "
          f"{statistics.median(times) * 1e3:.1f} ms per frame (median of 5 rounds of 3 frames)")


def bench_wire(rounds: int = 30) -> None:
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(f"tcp://127.0.0.1:{port}")
    dealer.send(b"hi")
    ident, _ = router.recv_multipart()
    key = os.urandom(32).hex().encode()
    tx, rx = Session(key), Session(key)
    for dtype in ("<f2", "<f4"):
        ab = np.random.default_rng(0).normal(0, 20, (1080, 1920, 2)).astype(dtype)
        mib = ab.nbytes / 2**20
        signed, plain, mac = [], [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            _, frames = tx.build("frame_done", {"job_id": "0" * 32, "frame": 1001, "path": "/x/ab.1001.exr"},
                                 buffers=[(ab, dtype, ab.shape)])
            router.send_multipart([ident, *frames], copy=False)
            got = dealer.recv_multipart(copy=False)
            _, rest = split_identities(got, router=False)
            msg = rx.unpack(rest)
            back = np.frombuffer(msg.buffers[0], dtype).reshape(msg.buffer_descriptors[0]["shape"])
            signed.append(time.perf_counter() - t0)
            assert back.shape == ab.shape
            t0 = time.perf_counter()
            router.send_multipart([ident, b"plain", memoryview(ab)], copy=False)
            got = dealer.recv_multipart(copy=False)
            np.frombuffer(got[1].buffer, dtype)
            plain.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            hmac.new(key, memoryview(ab).cast("B"), hashlib.sha256).hexdigest()
            mac.append(time.perf_counter() - t0)
        s, p, m = statistics.median(signed), statistics.median(plain), statistics.median(mac)
        print(f"1080p ab {dtype} ({mib:.2f} MiB): protocol round trip {s * 1e3:.2f} ms/frame "
              f"(sign+send+recv+verify+frombuffer), unsigned zmq {p * 1e3:.2f} ms, "
              f"protocol overhead {max(0.0, s - p) * 1e3:.2f} ms (HMAC-SHA256 alone {m * 1e3:.2f} ms per side)")
    router.close(0)
    dealer.close(0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pings", type=int, default=200)
    ap.add_argument("--cancels", type=int, default=5)
    ap.add_argument("--inline", action="store_true", help="also measure inline delivery of real 1080p EXRs")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPU cores, Python {sys.version.split()[0]}, libzmq {zmq.zmq_version()}")
    bench_wire()
    with tempfile.TemporaryDirectory() as work:
        bench_daemon(work, args.pings, args.cancels, args.inline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
