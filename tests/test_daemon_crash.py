"""Crash consistency with a real kill -9 of a real daemon process, graceful stop, and CURVE.

CI runs a few kills; ``bench/bench_daemon_crash.py`` runs the long version (≥ 20 kills)."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from coolcolor.daemon.testing import DaemonProcess, write_gray_sequence
from coolcolor.video.exr import read_ab_header
from coolcolor.video.job import ab_frame_path
from coolcolor_protocol import DaemonUnavailable, ProtocolError

FRAMES = 6


def frames_on_disk(out: str) -> list[str]:
    return sorted(os.listdir(out)) if os.path.isdir(out) else []


def test_kill_9_at_random_points_then_restart_finishes_every_frame_exactly_once(tmp_path):
    rng = random.Random(int(os.environ.get("COOLCOLOR_CRASH_SEED", "11")))
    src = write_gray_sequence(str(tmp_path / "src"), count=FRAMES, size=64)
    out = str(tmp_path / "out")
    daemon = DaemonProcess(str(tmp_path / "d")).start()
    spec = {"source": src, "output_dir": out, "steps": 12, "window": 1, "keyframes": [1], "prompt": "a red ball"}
    with daemon.client() as c:
        job_id = c.submit(spec, key="crash")["job_id"]
    kills, announced, terminated = 0, [], False
    try:
        for attempt in range(4):
            time.sleep(rng.uniform(0.2, 1.0))
            with daemon.client(timeout=5) as c:
                before = c.status(job_id)
            if before["state"] == "done":
                break
            if attempt == 2 and not terminated:  # one graceful stop in the middle: the job must stay queued
                assert daemon.stop(60) == 0
                assert not os.path.exists(daemon.connection_file)
                terminated = True
            else:
                daemon.kill()
                kills += 1
                if kills == 1:  # what a kill in the middle of a frame write leaves: a partial temporary
                    os.makedirs(out, exist_ok=True)
                    with open(os.path.join(out, ".ab.0005.k1ll3d_x.tmp.exr"), "wb") as f:
                        f.write(b"v/1\x01partial")
            announced.append(before["frames_done"])
            daemon.start()
        with daemon.client() as c:
            events = []
            c.attach(job_id)
            final = c.wait(job_id, timeout=240, on_event=events.append)
            assert final["state"] == "done", final
            assert final["frames"] == [[1, FRAMES]] and final["frames_done"] == FRAMES
            jobs = c.list_jobs()
    finally:
        daemon.stop(30)
    assert kills >= 3, f"the job finished after {kills} kills; make it longer"
    assert announced == sorted(announced), "a frame once journaled was lost"
    names = frames_on_disk(out)
    assert names == [f"ab.{f:04d}.exr" for f in range(1, FRAMES + 1)] + ["manifest.json"], names
    keys = {read_ab_header(ab_frame_path(out, f))["job_key"] for f in range(1, FRAMES + 1)}
    assert len(keys) == 1  # every frame belongs to this job, written whole
    resent = [e.content["frame"] for e in events if e.type == "frame_done"]
    assert len(resent) == len(set(resent))
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
            assert c.ping() < 1.0
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


def test_a_second_daemon_on_the_same_connection_file_is_refused(tmp_path):
    daemon = DaemonProcess(str(tmp_path / "d")).start(wait_model=False)
    try:
        second = DaemonProcess(str(tmp_path / "d"))
        with pytest.raises(RuntimeError, match=f"another daemon \\(pid {daemon.proc.pid}\\)"):
            second.start(wait_model=False, timeout=60)
    finally:
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(60) == 0
