"""kill -9 the daemon again and again during one long job; after the last restart the job must finish
with every frame present exactly once, no partial file, and one journal entry for the job.

    PYTHONPATH=backend:protocol OMP_NUM_THREADS=1 python bench/bench_daemon_crash.py \
        [--kills 50] [--frames 200] [--steps 8] [--seed 1]

Every kill is placed at an *event* through ``coolcolor.faults``: the daemon is started with
``COOLCOLOR_FAULT=point:count`` and SIGKILLs itself at that hit — during start-up (journal replayed,
model loading), inside a denoising step, inside an atomic file write (temporary fsynced, not yet
renamed), inside a journal commit, or right after a frame was journaled. The rng picks the point and
the count; ``kill_at_event`` bounds the count so that the kill surely fires and leaves work for the
kills still to come, so the figures do not depend on the machine's speed.

After each kill the bench reads the journal and the output folder: frames once journaled must still
be journaled and whole; a frame complete on disk must never be written again. Prints the kills by
kind, restarts, seconds, and the frames whose work a kill threw away (redone at a later start).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import signal
import sys
import tempfile
import time

from coolcolor.daemon.journal import Journal
from coolcolor.daemon.testing import KILL_POINTS, DaemonProcess, kill_at_event, write_gray_sequence
from coolcolor.video.exr import read_ab_header
from coolcolor.video.job import ab_frame_path
from coolcolor_protocol import DaemonUnavailable


def journaled(daemon: DaemonProcess, job_id: str) -> dict[int, str]:
    journal = Journal(os.path.join(daemon.state_dir, "journal.sqlite3"))
    try:
        return journal.frames(job_id)
    finally:
        journal.close()


def first_job(daemon: DaemonProcess, key: str) -> str:
    journal = Journal(os.path.join(daemon.state_dir, "journal.sqlite3"))
    try:
        record = journal.by_key(key)
    finally:
        journal.close()
    if record is None:
        raise SystemExit(f"the submit of {key!r} never reached the journal:\n{daemon.log()}")
    return record.job_id


def ab_files(out: str) -> dict[int, tuple[int, int]]:
    """frame -> (inode, mtime_ns) of each finished ab file: a rewrite of a finished frame changes it."""
    found = {}
    for name in os.listdir(out) if os.path.isdir(out) else []:
        if name.startswith("ab.") and name.endswith(".exr"):
            st = os.stat(os.path.join(out, name))
            found[int(name.split(".")[1])] = (st.st_ino, st.st_mtime_ns)
    return found


def temporaries(out: str) -> list[str]:
    return sorted(n for n in os.listdir(out) if n.startswith(".")) if os.path.isdir(out) else []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.frames < args.kills + 2:
        ap.error(f"--frames must be at least --kills + 2 ({args.kills + 2}) so every kill finds work left")
    rng = random.Random(args.seed)
    kinds = [KILL_POINTS[i % len(KILL_POINTS)] for i in range(args.kills)]  # every kind, evenly
    rng.shuffle(kinds)
    kinds.remove("mid_step")
    kinds.insert(0, "mid_step")  # the first daemon takes the submit, then dies in the job's first frames
    with tempfile.TemporaryDirectory() as work:
        src = write_gray_sequence(os.path.join(work, "src"), count=args.frames, size=64)
        out = os.path.join(work, "out")
        daemon = DaemonProcess(os.path.join(work, "d"))
        spec = {"source": src, "output_dir": out, "steps": args.steps, "window": 1, "keyframes": [1],
                "prompt": "a red ball on grey ground"}
        t0 = time.perf_counter()
        fired: collections.Counter[str] = collections.Counter()
        problems: list[str] = []
        lost_in_flight = rewritten = 0
        job_id, before_j, before_f = "", {}, {}
        for i, point in enumerate(kinds):
            left = args.frames - len(before_f)
            fault = kill_at_event(rng, point, args.steps, budget=(left - 1) // (args.kills - i))
            if i == 0:  # journal first, reply second: the job is in the journal even if the reply is lost
                daemon.start(env={"COOLCOLOR_FAULT": fault})
                with contextlib.suppress(DaemonUnavailable), daemon.client(timeout=60) as c:
                    c.submit(spec, key="crash-bench")
                code = daemon.proc.wait(600) if daemon.proc else 0
                job_id = first_job(daemon, "crash-bench")
            else:
                code = daemon.run_to_fault(fault)
            if code != -signal.SIGKILL:
                problems.append(f"kill {i + 1}: {fault} did not fire (exit {code})")
                break
            fired[point] += 1
            now_j, now_f = journaled(daemon, job_id), ab_files(out)
            if not set(before_j) <= set(now_j):
                problems.append(f"after {fault}: journaled frames lost: {sorted(set(before_j) - set(now_j))}")
            if any(read_ab_header(p) is None for f, p in now_j.items() if f not in before_j):
                problems.append(f"after {fault}: a journaled frame is not a whole ab file")
            rewritten += sum(1 for f, stamp in before_f.items() if now_f.get(f) != stamp)
            partial = [n for n in temporaries(out) if n.startswith(".ab.")]
            lost_in_flight += len(partial) + (point == "mid_step")
            print(f"kill {i + 1:>2}/{args.kills} at {fault:<22} {len(now_f):>4} frames on disk, "
                  f"{len(now_j):>4} journaled, {len(temporaries(out))} temporary file(s) left", flush=True)
            before_j, before_f = now_j, now_f
        daemon.start()
        with daemon.client(timeout=60) as c:
            frame_events = []
            c.attach(job_id, have=sorted(before_j))
            final = c.wait(job_id, timeout=3600, on_event=lambda m: (
                frame_events.append(m.content["frame"]) if m.type == "frame_done" else None))
            jobs = c.list_jobs()
        assert daemon.stop(120) == 0
        seconds = time.perf_counter() - t0
        rewritten += sum(1 for f, stamp in before_f.items() if ab_files(out).get(f) != stamp)
        names = sorted(os.listdir(out))
        expected = [f"ab.{f:04d}.exr" for f in range(1, args.frames + 1)] + ["manifest.json"]
        keys = {(read_ab_header(ab_frame_path(out, f)) or {}).get("job_key") for f in range(1, args.frames + 1)}
        checks = {
            f"{args.kills} kills fired, each at its event": sum(fired.values()) == args.kills and not problems,
            "job done": final["state"] == "done",
            "journal lists every frame": final["frames"] == [[1, args.frames]],
            "files = one per frame + manifest, no partial or temporary file": names == expected,
            "every frame written whole by this job": len(keys) == 1 and None not in keys,
            "no finished frame written twice": rewritten == 0,
            "the last client got each missing frame exactly once":
                sorted(frame_events) == sorted(set(range(1, args.frames + 1)) - set(before_j)),
            "one job in the journal": [j["job_id"] for j in jobs] == [job_id],
        }
        print(f"\n{args.frames} frames × {args.steps} steps, seed {args.seed}: {sum(fired.values())} kill -9s "
              f"({', '.join(f'{k} {fired[k]}' for k in KILL_POINTS)}), "
              f"{daemon.starts} starts, {seconds:.0f} s in all")
        print(f"frames redone (work in flight thrown away by a kill): {lost_in_flight}; "
              f"frames finished before the last start: {len(before_f)}, by the last start: "
              f"{args.frames - len(before_f)}; finished frames rewritten: {rewritten}")
        for name, ok in checks.items():
            print(f"  {'PASS' if ok else 'FAIL'}  {name}")
        for p in problems:
            print(f"  problem: {p}", file=sys.stderr)
        if not all(checks.values()):
            print(f"files: {names[:10]}…\nfinal: {final}\n{daemon.log()}", file=sys.stderr)
        return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
