"""One job per output folder (issue 27 §1; protocol/SPEC.md "Output folder ownership").

The races run as real ``coolcolor colorize`` processes, ordered by events — a process held at a fault
point (``COOLCOLOR_FAULT=…:pause``) until the test creates its resume file, a line awaited on a pipe —
never by sleeps. The Ray versions are in test_ray_executor.py.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from coolcolor import faults
from coolcolor.video.exr import read_ab_header
from coolcolor.video.ownership import (
    HOST,
    OWNER_FILE,
    PID_NAMESPACE,
    STALE_AFTER_S,
    FolderBusy,
    FolderOwnership,
    describe_job,
    read_owner,
)
from test_video_job import one_shot_sequence

ROOT = Path(__file__).resolve().parents[1]
FRAMES = range(1, 5)
WAIT_S = 600.0  # generous: these are events, the time only bounds a hang


class Colorize:
    """``coolcolor colorize`` in a process of its own; stderr read line by line on a thread."""

    def __init__(self, source: str, out: Path, prompt: str, model_dir: str, fault: str = "",
                 resume: Path | None = None, extra: tuple[str, ...] = ()) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([str(ROOT / "backend"), str(ROOT / "protocol")])}
        env.pop(faults.ENV, None)
        if fault:
            env[faults.ENV] = fault
        if resume is not None:
            env[faults.RESUME_ENV] = str(resume)
        command = [sys.executable, "-c", "import sys; from coolcolor.cli import main; sys.exit(main(sys.argv[1:]))",
                   "colorize", source, "-o", str(out), "--prompt", prompt, "--keyframe", "1", "--steps", "2",
                   "--window", "2", "--model", model_dir, "--device", "cpu", *extra]
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text: str) -> str:
        """The first stderr line holding ``text``; fails if the process ends without printing it."""
        deadline = time.monotonic() + WAIT_S
        while True:
            line = self.lines.get(timeout=max(1.0, deadline - time.monotonic()))
            if line is None:
                self.proc.wait()
                pytest.fail(f"exited {self.proc.returncode} without {text!r}:\n{''.join(self.err)[-3000:]}")
            if text in line:
                return line

    def finish(self) -> tuple[int, str, str]:
        out = self.proc.stdout.read() if self.proc.stdout else ""
        rc = self.proc.wait(timeout=WAIT_S)
        while self.lines.get(timeout=WAIT_S) is not None:  # the reader has seen all of stderr
            pass
        return rc, out, "".join(self.err)


def _prompts(out: Path) -> dict[int, str]:
    return {int(p.name[3:7]): (read_ab_header(str(p)) or {}).get("prompt") for p in sorted(out.glob("ab.*.exr"))}


def test_a_second_job_into_a_held_folder_is_refused_at_once_and_nothing_mixes(tmp_path, model_dir):
    source = one_shot_sequence(tmp_path / "src", FRAMES)
    out, resume = tmp_path / "out", tmp_path / "resume"
    first = Colorize(source, out, "a red ball", model_dir, faults.spec("mid_step", 1, "pause"), resume)
    first.wait_for("pause at mid_step")  # holds the folder, inside its first diffusion step, nothing written
    second = Colorize(source, out, "a blue sky", model_dir)
    rc, stdout, stderr = second.finish()
    errors = [line for line in stderr.splitlines() if "error" in line]
    assert rc == 1 and "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines() == errors, stderr  # one line, at once: before the model is loaded
    assert errors[0].startswith(f"coolcolor colorize: error: output folder {out} is being written by another job "
                                f"(prompt 'a red ball', source {source}, pid {first.proc.pid} on {HOST}, since ")
    assert "wait for it to finish or use another output folder" in errors[0]
    assert f"delete {out / OWNER_FILE}" in errors[0]
    resume.touch()
    rc, stdout, stderr = first.finish()
    assert rc == 0, stderr
    assert "4 frame(s) written, 0 already done" in stdout
    assert _prompts(out) == {f: "a red ball" for f in FRAMES}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["prompt"] == "a red ball"
    assert not (out / OWNER_FILE).exists()


def test_a_second_run_of_the_same_job_waits_and_computes_no_frame_twice(tmp_path, model_dir):
    source = one_shot_sequence(tmp_path / "src", FRAMES)
    out, resume = tmp_path / "out", tmp_path / "resume"
    first = Colorize(source, out, "a red ball", model_dir, faults.spec("mid_step", 1, "pause"), resume)
    first.wait_for("pause at mid_step")
    second = Colorize(source, out, "a red ball", model_dir)
    line = second.wait_for("is being written by the same job")
    assert f"pid {first.proc.pid} on {HOST}" in line and "waiting for it to finish" in line
    resume.touch()
    rc1, out1, err1 = first.finish()
    rc2, out2, err2 = second.finish()
    assert rc1 == 0 and rc2 == 0, err1 + err2
    assert "4 frame(s) written, 0 already done" in out1
    assert "0 frame(s) written, 4 already done" in out2
    assert _prompts(out) == {f: "a red ball" for f in FRAMES}
    assert not (out / OWNER_FILE).exists()


def test_a_holder_killed_with_sigkill_is_taken_over_and_the_job_resumes(tmp_path, model_dir):
    source = one_shot_sequence(tmp_path / "src", FRAMES)
    out = tmp_path / "out"
    killed = Colorize(source, out, "a red ball", model_dir, faults.spec("frame_written", 2, "kill"))
    rc, _, stderr = killed.finish()
    assert rc == -9, stderr
    owner = read_owner(str(out))  # left behind by the dead holder
    assert owner is not None and owner["pid"] == killed.proc.pid and owner["host"] == HOST
    assert len(_prompts(out)) == 2
    again = Colorize(source, out, "a red ball", model_dir)
    rc, stdout, stderr = again.finish()
    assert rc == 0, stderr
    assert "2 frame(s) written, 2 already done" in stdout
    assert not (out / OWNER_FILE).exists() and _prompts(out) == {f: "a red ball" for f in FRAMES}


# ----------------------------------------------------------------------------- the owner file itself


def _foreign_owner(folder: Path, host: str, age_s: float, job_key: str = "k-other") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / OWNER_FILE
    path.write_text(json.dumps({"format": "coolcolor-folder-owner", "version": 1, "job_key": job_key,
                                "job": {"prompt": "night", "source": "/plates/a.%04d.exr"}, "host": host,
                                "pid": 4242, "pid_start": None, "started": time.time() - age_s,
                                "token": "t-other", "farm_plan": None}))
    os.utime(path, (time.time() - age_s, time.time() - age_s))


def test_a_holder_on_another_host_counts_until_its_heartbeat_is_stale(tmp_path):
    out = tmp_path / "out"
    _foreign_owner(out, "render-node-7", age_s=STALE_AFTER_S / 2)
    with pytest.raises(FolderBusy, match=r"being written by another job \(prompt 'night', source "
                                         r"/plates/a\.%04d\.exr, pid 4242 on render-node-7, since "):
        FolderOwnership(str(out), "k-mine", {"prompt": "day"}).acquire()
    _foreign_owner(out, "render-node-7", age_s=STALE_AFTER_S + 5)
    ownership = FolderOwnership(str(out), "k-mine", {"prompt": "day"})
    ownership.acquire()
    try:
        assert ownership.took_over is not None and ownership.took_over["host"] == "render-node-7"
        assert read_owner(str(out))["job_key"] == "k-mine"
    finally:
        ownership.release()
    assert not (out / OWNER_FILE).exists()


def test_a_takeover_removes_only_the_stale_file_it_judged(tmp_path):
    """Two processes found the same stale file; the first replaced it. The second's takeover must not
    remove the first's fresh file: it moves it aside, sees another token, and puts it back."""
    out = tmp_path / "out"
    fresh = FolderOwnership(str(out), "k-1", {"prompt": "a"})
    fresh.acquire()
    try:
        late = FolderOwnership(str(out), "k-1", {"prompt": "a"})
        assert late._break({"token": "the-stale-one"}) is False
        assert read_owner(str(out))["token"] == fresh.token
        assert [p.name for p in out.iterdir()] == [OWNER_FILE]
    finally:
        fresh.release()


def test_a_dead_pid_on_this_host_is_taken_over_but_not_one_of_another_pid_namespace(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    _foreign_owner(out, HOST, age_s=0)
    record = json.loads((out / OWNER_FILE).read_text())
    (out / OWNER_FILE).write_text(json.dumps({**record, "pid": dead.pid, "pid_namespace": PID_NAMESPACE}))
    ownership = FolderOwnership(str(out), "k-mine", {"prompt": "day"})
    ownership.acquire()
    ownership.release()
    assert ownership.took_over is not None and ownership.took_over["pid"] == dead.pid
    # the same host name, but pids of another namespace (a container with the host's name): its pid says
    # nothing here, so only its heartbeat's age counts — fresh, it holds the folder
    _foreign_owner(out, HOST, age_s=0)
    with pytest.raises(FolderBusy, match="pid 4242 on "):
        FolderOwnership(str(out), "k-mine", {"prompt": "day"}).acquire()


def test_the_owner_file_is_readable_by_others_and_written_before_anything_else(tmp_path):
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        ownership = FolderOwnership(str(out), "k", {"prompt": "a"})
        ownership.acquire()
    finally:
        os.umask(old)
    try:
        assert oct(os.stat(out / OWNER_FILE).st_mode & 0o777) == oct(0o644)
        owner = read_owner(str(out))
        assert owner["pid"] == os.getpid() and owner["host"] == HOST and owner["job_key"] == "k"
    finally:
        ownership.release()


def test_a_holder_whose_file_was_taken_over_stops_and_leaves_the_new_file(tmp_path, monkeypatch):
    from coolcolor.video import ownership as module

    monkeypatch.setattr(module, "HEARTBEAT_S", 0.01)
    out = tmp_path / "out"
    frozen = FolderOwnership(str(out), "k", {"prompt": "a"})
    frozen.acquire()
    _foreign_owner(out, "render-node-7", age_s=0, job_key="k")  # what a takeover leaves: another token
    deadline = time.monotonic() + WAIT_S
    while frozen.lost is None and time.monotonic() < deadline:  # the next heartbeat notices
        time.sleep(0.01)
    with pytest.raises(module.OwnershipLost, match="was taken over by another process"):
        frozen.check()
    frozen.release()
    assert read_owner(str(out))["token"] == "t-other"


def test_the_same_job_waiting_for_the_folder_can_be_cancelled_and_writes_nothing(tmp_path, tiny_pipe):
    from coolcolor.video.job import ColorizeJob, JobCancelled, JobEvents, open_job
    from coolcolor.video.run import run_colorize_job

    source = one_shot_sequence(tmp_path / "src", FRAMES)
    job = ColorizeJob(source=source, output_dir=str(tmp_path / "out"), keyframes=[1], steps=1)
    with open_job(job) as opened:
        key = opened.key(tiny_pipe.model_hash)
    holder = FolderOwnership(job.output_dir, key, describe_job(job))
    holder.acquire()

    class CancelWhileWaiting(JobEvents):
        told = ""

        def waiting(self, message):
            self.told = message

        def should_cancel(self):
            return bool(self.told)

    events = CancelWhileWaiting()
    try:
        with pytest.raises(JobCancelled):
            run_colorize_job(job, tiny_pipe, events)
    finally:
        holder.release()
    assert "is being written by the same job" in events.told
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []
