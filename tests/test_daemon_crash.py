"""Crash consistency with a real kill -9 of a real daemon process, graceful stop, and CURVE.

Every kill is placed at an *event* of the work through ``coolcolor.faults`` (the process SIGKILLs
itself at the n-th hit of a named point), never after a sleep, so the outcome does not depend on the
machine's speed or load. CI runs one kill of each kind; ``bench/bench_daemon_crash.py`` runs 50."""

from __future__ import annotations

import os
import random
import re
import signal
import time

import pytest

from coolcolor import faults
from coolcolor.daemon.journal import Journal
from coolcolor.daemon.testing import KILL_POINTS, DaemonProcess, kill_at_event, write_gray_sequence
from coolcolor.video.exr import read_ab_header
from coolcolor.video.job import ab_frame_path
from coolcolor_protocol import UNAVAILABLE, DaemonUnavailable, ProtocolError

FRAMES = 8
STEPS = 6


def frames_on_disk(out: str) -> list[str]:
    return sorted(os.listdir(out)) if os.path.isdir(out) else []


def journaled_frames(daemon: DaemonProcess, job_id: str) -> dict[int, str]:
    """Read the journal of a daemon that is not running (what a restart will replay)."""
    journal = Journal(os.path.join(daemon.state_dir, "journal.sqlite3"))
    try:
        return journal.frames(job_id)
    finally:
        journal.close()


def wait_for_frame_done(client, job_id: str, timeout: float = 240.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [m.content["frame"] for m in client.poll(1.0)
                if m.type == "frame_done" and m.content.get("job_id") == job_id]
        if done:
            return done
    raise AssertionError(f"no frame_done for job {job_id} within {timeout} s")


def wait_until_stopping(client, src: str, out: str, timeout: float = 60.0) -> None:
    """After SIGTERM: a submit is refused with "shutting down" once the daemon has taken the signal
    (before that, this job is refused for its missing source, and never journaled)."""
    probe = {"source": src.replace("%04d", "missing-%04d"), "output_dir": out}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reply = client.submit(probe, key="probe", timeout=30)
        except ProtocolError as refused:
            if refused.code == UNAVAILABLE and "shutting down" in refused.message:
                return
            continue
        raise AssertionError(f"a job with a missing source was accepted: {reply}")
    raise AssertionError(f"the daemon did not begin stopping within {timeout} s of SIGTERM")


def test_kill_9_at_random_points_then_restart_finishes_every_frame_exactly_once(tmp_path):
    rng = random.Random(int(os.environ.get("COOLCOLOR_CRASH_SEED", "11")))
    src = write_gray_sequence(str(tmp_path / "src"), count=FRAMES, size=64)
    out = str(tmp_path / "out")
    resume = str(tmp_path / "resume")
    daemon = DaemonProcess(str(tmp_path / "d"))
    spec = {"source": src, "output_dir": out, "steps": STEPS, "window": 1, "keyframes": [1], "prompt": "a red ball"}

    # A graceful stop in the middle of the job: the worker is held right after the first frame_done,
    # SIGTERM arrives, and only then does it go on, to find the stop at its next diffusion step.
    daemon.start(env={"COOLCOLOR_FAULT": faults.spec("frame_written", 1, "pause"),
                      "COOLCOLOR_FAULT_RESUME": resume})
    try:
        with daemon.client() as c:
            job_id = c.submit(spec, key="crash")["job_id"]
            first = wait_for_frame_done(c, job_id)
            daemon.proc.send_signal(signal.SIGTERM)
            wait_until_stopping(c, src, out)
            open(resume, "w").close()
        assert daemon.proc.wait(240) == 0, daemon.log()
    finally:
        daemon.kill()
    assert not os.path.exists(daemon.connection_file)
    journaled = journaled_frames(daemon, job_id)
    assert set(first) <= set(journaled) and len(journaled) < FRAMES, journaled
    journal = Journal(os.path.join(daemon.state_dir, "journal.sqlite3"))
    assert journal.get(job_id).state == "queued"  # resumes at the next start
    journal.close()

    # One kill -9 of each kind, in a random order, each at a random count of its event.
    kills = []
    order = rng.sample(KILL_POINTS, len(KILL_POINTS))
    for i, point in enumerate(order):
        left = FRAMES - len([n for n in frames_on_disk(out) if n.startswith("ab.")])
        fault = kill_at_event(rng, point, STEPS, budget=min(1, (left - 1) // (len(order) - i)))
        assert daemon.run_to_fault(fault) == -signal.SIGKILL, f"{fault} did not fire:\n{daemon.log()}"
        kills.append(fault)
        now = journaled_frames(daemon, job_id)
        assert set(journaled) <= set(now), f"after {fault}: journaled frames lost: {journaled} -> {now}"
        assert all(read_ab_header(p) is not None for p in now.values()), f"after {fault}: a journaled frame is partial"
        journaled = now
        if point == "mid_write":  # what a kill between temp write and rename leaves: a temporary, never a frame
            assert any(n.startswith(".") and ".tmp." in n for n in frames_on_disk(out)), frames_on_disk(out)
    assert len(kills) == len(KILL_POINTS) and len(journaled) < FRAMES, (kills, journaled)

    daemon.start()
    try:
        with daemon.client() as c:
            events = []
            c.attach(job_id, have=sorted(journaled))
            final = c.wait(job_id, timeout=240, on_event=events.append)
            assert final["state"] == "done", final
            assert final["frames"] == [[1, FRAMES]] and final["frames_done"] == FRAMES
            jobs = c.list_jobs()
    finally:
        daemon.stop(60)
    names = frames_on_disk(out)
    assert names == [f"ab.{f:04d}.exr" for f in range(1, FRAMES + 1)] + ["manifest.json"], names
    keys = {read_ab_header(ab_frame_path(out, f))["job_key"] for f in range(1, FRAMES + 1)}
    assert len(keys) == 1  # every frame belongs to this job, written whole
    resent = [e.content["frame"] for e in events if e.type == "frame_done"]
    assert sorted(resent) == sorted(set(range(1, FRAMES + 1)) - set(journaled)), resent  # each frame once
    assert [j["job_id"] for j in jobs] == [job_id]  # one job, never duplicated by a restart


def test_curve_lets_authorized_clients_in_and_keeps_others_out(tmp_path):
    zmq_auth = pytest.importorskip("zmq.auth")
    from coolcolor.daemon.server import Daemon, DaemonConfig
    from coolcolor_protocol import Client, read_connection_file

    keys = tmp_path / "keys"
    clients = tmp_path / "clients"
    keys.mkdir()
    clients.mkdir()
    server_public, server_secret = zmq_auth.create_certificates(str(keys), "server")
    client_public, client_secret = zmq_auth.create_certificates(str(keys), "client")
    os.replace(client_public, clients / "client.key")
    zmq_auth.create_certificates(str(keys), "stranger")
    daemon = DaemonProcess(str(tmp_path / "d"), args=("--curve-secret", server_secret, "--curve-clients",
                                                       str(clients)))
    daemon.start(wait_model=False)
    try:
        info = read_connection_file(daemon.connection_file)
        assert len(info["curve_serverkey"]) == 40
        pub, sec = zmq_auth.load_certificate(client_secret)
        with Client(daemon.connection_file, curve_keys=(pub.decode(), sec.decode()), timeout=10) as c:
            assert c.hello()["server"]["session"] == info["session"]
            assert c.ping() >= 0.0  # answered (its latency: bench/bench_daemon_latency.py)
        with pytest.raises(ProtocolError, match="requires CURVE"):
            Client(daemon.connection_file)
        pub, sec = zmq_auth.load_certificate(str(keys / "stranger.key_secret"))
        with Client(daemon.connection_file, curve_keys=(pub.decode(), sec.decode()), timeout=1.5) as c, \
                pytest.raises(DaemonUnavailable):
            c.ping()
    finally:
        assert daemon.stop(60) == 0
    # With CURVE, binding beyond loopback is allowed (checked without binding a public port here).
    Daemon(DaemonConfig(state_dir=str(tmp_path / "s"), connection_file=str(tmp_path / "c.json"), ip="0.0.0.0",
                        curve_secret_file=server_secret, curve_clients_dir=str(clients))).journal.close()
    with pytest.raises(Exception, match="refusing to listen on 10.1.2.3"):
        Daemon(DaemonConfig(state_dir=str(tmp_path / "s"), connection_file=str(tmp_path / "c.json"), ip="10.1.2.3"))


def test_clients_of_a_daemon_killed_with_9_are_told_at_once_that_it_is_not_running(tmp_path, capsys):
    """Issue 27: they waited out their timeout and said "no reply to hello (code 503)"; the connection file
    records the daemon's pid and host, so a client sees that its process is gone."""
    from coolcolor import cli
    from coolcolor_protocol import Client

    daemon = DaemonProcess(str(tmp_path / "d")).start(wait_model=False)
    stale = (r"the CoolColor daemon is not running: connection file .*daemon\.json is stale \(its daemon, pid "
             rf"{daemon.proc.pid} on .*, has exited\); start it with `coolcolor serve`")
    connected = Client(daemon.connection_file, timeout=600)  # a wait this long would fail the suite's timeout
    try:
        connected.hello()
        daemon.kill()
        assert os.path.exists(daemon.connection_file)  # nothing cleaned up
        with pytest.raises(DaemonUnavailable, match=stale):
            connected.ping()  # connected before the kill: told within a fraction of a second
    finally:
        connected.close()
    with pytest.raises(DaemonUnavailable, match=stale):
        Client(daemon.connection_file, timeout=600)
    assert cli.main(["jobs", "--connection-file", daemon.connection_file, "--timeout", "600"]) == 1
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(f"coolcolor jobs: error: {stale}", err), err


def test_a_second_daemon_on_the_same_connection_file_is_refused(tmp_path):
    daemon = DaemonProcess(str(tmp_path / "d")).start(wait_model=False)
    try:
        second = DaemonProcess(str(tmp_path / "d"))
        with pytest.raises(RuntimeError, match=f"another daemon \\(pid {daemon.proc.pid}\\)"):
            second.start(wait_model=False, timeout=60)
    finally:
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(60) == 0
