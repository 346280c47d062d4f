"""kill -9 the daemon again and again during a multi-frame job; after the last restart the job must
finish with every frame present exactly once and no partial file.

    PYTHONPATH=backend:protocol python bench/bench_daemon_crash.py [--kills 20] [--frames 24] [--seed 1]

Each round: start the daemon (same state folder), attach with the frames already received (so the
client gets each frame once across all rounds), listen for a random time, then SIGKILL — at a
random point during the work, or (one round in four) right after start-up while the journal is
replayed and the model loads. Prints the number of kills survived and the checks.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import tempfile
import time

from coolcolor.daemon.testing import DaemonProcess, write_gray_sequence
from coolcolor.video.exr import read_ab_header
from coolcolor.video.job import ab_frame_path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as work:
        src = write_gray_sequence(os.path.join(work, "src"), count=args.frames, size=64)
        out = os.path.join(work, "out")
        daemon = DaemonProcess(os.path.join(work, "d"))
        daemon.start()
        spec = {"source": src, "output_dir": out, "steps": args.steps, "window": 1, "keyframes": [1],
                "prompt": "a red ball on grey ground"}
        with daemon.client() as c:
            job_id = c.submit(spec, key="crash-bench")["job_id"]
        received: collections.Counter[int] = collections.Counter()
        kills, early, t0 = 0, 0, time.perf_counter()
        try:
            while kills < args.kills:
                with daemon.client(timeout=10) as c:
                    if c.status(job_id)["state"] == "done":
                        break
                    c.attach(job_id, have=sorted(received))
                    listen = rng.uniform(0.0, 0.4) if rng.random() < 0.25 else rng.uniform(0.3, 2.0)
                    deadline = time.monotonic() + listen
                    while time.monotonic() < deadline:
                        for m in c.poll(max(0.0, min(0.1, deadline - time.monotonic()))):
                            if m.type == "frame_done" and m.content["job_id"] == job_id:
                                received[m.content["frame"]] += 1
                early += listen < 0.4
                daemon.kill()
                kills += 1
                partial = [n for n in os.listdir(out) if n.startswith(".")] if os.path.isdir(out) else []
                print(f"kill {kills:>2} after {listen:.2f} s: {len(received)} frames received, "
                      f"{len(partial)} temporary file(s) left by the kill", flush=True)
                if rng.random() < 0.25:  # sometimes kill again during start-up (journal replay, model load)
                    daemon.start(wait_model=False)
                    time.sleep(rng.uniform(0.0, 1.0))
                    daemon.kill()
                    kills += 1
                    print(f"kill {kills:>2} during start-up", flush=True)
                daemon.start()
            with daemon.client(timeout=10) as c:
                c.attach(job_id, have=sorted(received))
                final = c.wait(job_id, timeout=600, on_event=lambda m: (
                    received.update([m.content["frame"]]) if m.type == "frame_done" else None))
                jobs = c.list_jobs()
        finally:
            daemon.stop(60)
        names = sorted(os.listdir(out))
        expected = [f"ab.{f:04d}.exr" for f in range(1, args.frames + 1)] + ["manifest.json"]
        keys = {read_ab_header(ab_frame_path(out, f))["job_key"] for f in range(1, args.frames + 1)}
        checks = {
            "job done": final["state"] == "done",
            "journal lists every frame": final["frames"] == [[1, args.frames]],
            "files = one per frame + manifest, no partial file": names == expected,
            "every frame written whole by this job": len(keys) == 1,
            "client received each frame exactly once": sorted(received) == list(range(1, args.frames + 1))
            and set(received.values()) == {1},
            "one job in the journal": [j["job_id"] for j in jobs] == [job_id],
        }
        print(f"kills survived: {kills} ({early} early, {daemon.starts} starts) in "
              f"{time.perf_counter() - t0:.0f} s; {args.frames} frames × {args.steps} steps")
        for name, ok in checks.items():
            print(f"  {'PASS' if ok else 'FAIL'}  {name}")
        if not all(checks.values()):
            print(f"received: {dict(received)}\nfiles: {names}\nfinal: {final}", file=sys.stderr)
        return 0 if all(checks.values()) and kills >= args.kills else 1


if __name__ == "__main__":
    sys.exit(main())
