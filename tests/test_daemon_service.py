"""The daemon as the plugins see it: a real child process, real sockets on 127.0.0.1, the real video
engine with ``tiny_pipeline(seed=0)``. One daemon serves the whole module (start-up costs seconds).
Every wait is bounded, so a bug fails a test instead of hanging CI."""

from __future__ import annotations

import os
import random
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq

from coolcolor.daemon.testing import DaemonProcess, child_env, write_gray_sequence
from coolcolor.video.exr import read_ab_exr
from coolcolor.video.job import ab_frame_path
from coolcolor_protocol import (
    PROTOCOL_VERSION,
    Client,
    ProtocolError,
    Session,
    endpoint,
    read_connection_file,
    split_identities,
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    work = tmp_path_factory.mktemp("daemon")
    proc = DaemonProcess(str(work)).start()
    yield proc
    proc.stop(30)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    return write_gray_sequence(str(tmp_path_factory.mktemp("src")), count=4, size=64)


def job(source: str, out, **kw) -> dict:
    return dict({"source": source, "output_dir": str(out), "steps": 3, "window": 2, "keyframes": [1]}, **kw)


def collect(client: Client, job_id: str, timeout: float = 120.0) -> tuple[dict, list]:
    events = []
    final = client.wait(job_id, timeout=timeout, on_event=events.append)
    return final, events


class Raw:
    """A bare DEALER that speaks the wire format by hand (for replays, tampering and fuzzing)."""

    def __init__(self, daemon: DaemonProcess):
        self.info = read_connection_file(daemon.connection_file)
        self.session = Session(self.info["key"].encode())
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint(self.info))

    def build(self, msg_type: str, content: dict | None = None) -> list[bytes]:
        return [bytes(f) for f in self.session.build(msg_type, content or {}, to=self.info["session"])[1]]

    def send(self, frames: list[bytes]) -> None:
        self.sock.send_multipart(frames)

    def recv(self, timeout: float = 60.0):
        if not self.sock.poll(int(timeout * 1000)):
            raise TimeoutError("no reply from the daemon")
        _, rest = split_identities(self.sock.recv_multipart(), router=False)
        return self.session.unpack(rest)

    def close(self) -> None:
        self.sock.close(0)


# ------------------------------------------------------------------------------------------------


def test_connection_file_hello_and_version_negotiation(daemon):
    path = daemon.connection_file
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    info = read_connection_file(path)
    assert info["ip"] == "127.0.0.1" and len(info["key"]) == 64 and info["signature_scheme"] == "hmac-sha256"
    with daemon.client() as c:
        hello = c.hello()
        assert hello["protocol"] == PROTOCOL_VERSION
        assert hello["server"]["session"] == info["session"]
        assert hello["model"]["state"] == "ready" and len(hello["model"]["hash"]) == 64
        assert hello["limits"]["progress_max_hz"] == 10 and "<f2" in hello["limits"]["dtypes"]
        # The count `coolcolor words` lists for the served model (issue 27).
        from coolcolor.model.presets import tiny_components
        from coolcolor.model.prompt_words import known_words

        assert hello["model"]["known_words"] == len(known_words(tiny_components(seed=0).tokenizer)) > 50
        with pytest.raises(ProtocolError) as exc:
            c.request("hello", {"protocol": "2.0"})
        assert exc.value.code == 426 and f"this daemon speaks {PROTOCOL_VERSION}" in exc.value.message
    raw = Raw(daemon)
    try:
        frames = raw.build("ping")
        frames[0] = b"<COOLCOLOR|7>"
        raw.send(frames)
        reply = raw.recv()
        assert reply.type == "error" and reply.content["code"] == 426
    finally:
        raw.close()


def test_a_job_runs_to_done_with_throttled_progress_and_each_frame_once(daemon, source, tmp_path):
    with daemon.client() as c:
        reply = c.submit(job(source, tmp_path / "out", steps=4), key="basic")
        assert reply["state"] in ("queued", "running") and reply["frames_total"] == 4
        final, events = collect(c, reply["job_id"])
    assert final["state"] == "done" and final["frames_done"] == 4 and final["frames"] == [[1, 4]]
    frames = [e.content["frame"] for e in events if e.type == "frame_done"]
    assert sorted(frames) == [1, 2, 3, 4]
    for f in frames:
        ab, header = read_ab_exr(ab_frame_path(str(tmp_path / "out"), f))
        assert ab.shape == (64, 64, 2) and header["frame"] == f
    assert not [n for n in os.listdir(tmp_path / "out") if n.startswith(".")]  # no temporaries
    progress = [e for e in events if e.type == "progress"]
    assert progress and all(p.content["job_id"] == reply["job_id"] for p in progress)
    assert {"frames_done", "frames_total", "step", "steps_total", "eta_s", "queue_position"} <= set(progress[0].content)
    # Events arrive in the order of the work (the throttle's rate is a figure: bench_daemon_latency.py).
    done_counts = [p.content.get("frames_done", 0) for p in progress]
    assert done_counts == sorted(done_counts), done_counts
    states = [e.content["state"] for e in events if e.type == "job_state"]
    assert states[-1] == "done"


def test_submit_reply_and_status_name_the_prompt_words_the_model_does_not_know(daemon, source, tmp_path):
    """Issue 16: the plugins show these beside the prompt field, before any frame exists."""
    with daemon.client() as c:
        reply = c.submit(job(source, tmp_path / "out", steps=1, prompt="a red ball and an astronaut"), key="words")
        assert reply["unknown_words"] == ["astronaut"]
        assert c.status(reply["job_id"])["unknown_words"] == ["astronaut"]
        known = c.submit(job(source, tmp_path / "out2", steps=1, prompt="a red ball"), key="words-known")
        assert known["unknown_words"] == []
        for job_id in (reply["job_id"], known["job_id"]):
            assert collect(c, job_id)[0]["state"] == "done"


def test_submit_without_wait_prints_the_prompt_warnings(daemon, source, tmp_path, capsys):
    """Issue 27: ``coolcolor submit`` said nothing of ignored words (or of no prompt) unless it waited."""
    from coolcolor import cli

    base = ["submit", source, "--steps", "1", "--keyframe", "1", "--connection-file", daemon.connection_file]
    cases = [(["--prompt", "a red astronaut"], "the model ignores the word(s) astronaut"),
             ([], "the prompt is empty: the job runs unconditionally")]
    job_ids = []
    for n, (prompt, expected) in enumerate(cases):
        capsys.readouterr()
        assert cli.main([*base, *prompt, "-o", str(tmp_path / f"out{n}")]) == 0
        out, err = capsys.readouterr()
        warnings = [line for line in err.splitlines() if line.strip()]
        assert len(warnings) == 1 and warnings[0].startswith(f"coolcolor submit: warning: {expected}"), err
        job_ids.append(out.split()[0])
    with daemon.client() as c:
        for job_id in job_ids:
            assert collect(c, job_id)[0]["state"] == "done"


def test_ping_is_answered_during_a_job_and_cancel_stops_within_one_step(daemon, source, tmp_path):
    """Ordered by events: the cancel is sent once denoising is under way; the engine checks for it at
    every step, so at most one more step runs whatever the machine's speed (latencies: bench/)."""
    with daemon.client() as c:
        reply = c.submit(job(source, tmp_path / "long", steps=400, window=4), key="long")
        job_id = reply["job_id"]
        deadline = time.monotonic() + 240
        step_seen = 0
        while step_seen < 2 and time.monotonic() < deadline:  # wait until diffusion is under way
            for m in c.poll(0.2):
                if m.type == "progress" and m.content.get("job_id") == job_id:
                    step_seen = m.content.get("step") or 0
        assert step_seen >= 2, "the job never started denoising"
        for _ in range(5):
            assert c.ping(timeout=60) >= 0.0  # answered while the worker denoises
        ack = c.cancel(job_id, timeout=60)
        assert ack["state"] == "cancelling"
        final, events = collect(c, job_id, timeout=240)
    assert final["state"] == "cancelled"
    ends = [e.content for e in events if e.type == "job_state" and e.content["state"] == "cancelled"]
    assert ends and ends[0]["steps_after_cancel"] <= 1
    with daemon.client() as c:
        assert c.cancel(job_id)["state"] == "cancelled"  # idempotent
        with pytest.raises(ProtocolError) as exc:
            c.cancel("0" * 32)
        assert exc.value.code == 404


def test_bad_requests_get_named_errors_and_the_daemon_keeps_serving(daemon, source, tmp_path):
    with daemon.client() as c:
        cases = [
            (job(str(tmp_path / "nowhere" / "a.%04d.png"), tmp_path / "o1"), 400, "job.source folder not found"),
            (job(source.replace("gray", "nothing"), tmp_path / "o2"), 400, "no frames match"),
            (job(source, tmp_path / "o3", first=2, last=9, keyframes=[2]), 400, "missing frames"),
            (job(source, tmp_path / "o4", keyframes=[1, 7]), 400, "job.keyframes: keyframe(s) 7 outside the frame range 1-4"),
            (job(source, tmp_path / "o5", encoding="acescg-please"), 400, "unknown input encoding"),
            (job(source, tmp_path / "o6", prompt="p" * 5000), 413, "prompt"),
            (job(source, "/proc/1/nope"), 400, "not writable"),
        ]
        for spec, code, words in cases:
            with pytest.raises(ProtocolError) as exc:
                c.request("submit", {"key": f"bad-{code}-{words}", "job": spec}, retry=False)
            assert exc.value.code == code, (words, exc.value)
            assert words in exc.value.message, exc.value.message
        with pytest.raises(ProtocolError) as exc:
            c.request("status", {"job_id": "f" * 32})
        assert exc.value.code == 404
        raw = Raw(daemon)
        try:
            raw.send(raw.build("make_coffee", {}))
            reply = raw.recv()
            assert reply.content["code"] == 400 and "unknown message type 'make_coffee'" in reply.content["message"]
        finally:
            raw.close()
        assert c.ping(timeout=60) >= 0.0  # still answering


def test_idempotent_submit_conflict_and_result_cache(daemon, source, tmp_path):
    spec = job(source, tmp_path / "c1", seed=5)
    with daemon.client() as c:
        first = c.submit(spec, key="idem")
        again = c.submit(spec, key="idem")
        assert again["job_id"] == first["job_id"] and again["duplicate"] is True
        with pytest.raises(ProtocolError) as exc:
            c.submit(dict(spec, seed=6), key="idem")
        assert exc.value.code == 409 and "already used for a different job" in exc.value.message
        assert collect(c, first["job_id"])[0]["state"] == "done"
        mtimes = {f: os.stat(ab_frame_path(spec["output_dir"], f)).st_mtime_ns for f in range(1, 5)}
        hit = c.submit(spec, key="idem-2")  # same work under a new key, same folder: answered at once
        assert hit["state"] == "done" and hit["cached"] is True and hit["frames_done"] == 4
        assert {f: os.stat(ab_frame_path(spec["output_dir"], f)).st_mtime_ns for f in range(1, 5)} == mtimes
        other = c.submit(dict(spec, output_dir=str(tmp_path / "c2")), key="idem-3")  # copied, not recomputed
        final, events = collect(c, other["job_id"])
        assert final["state"] == "done" and final["cached"] is True
        assert not [e for e in events if e.type == "progress" and e.content.get("frames_done", 4) < 4]  # no denoising
        a, _ = read_ab_exr(ab_frame_path(spec["output_dir"], 3))
        b, _ = read_ab_exr(ab_frame_path(str(tmp_path / "c2"), 3))
        assert np.array_equal(a, b)
        with pytest.raises(ProtocolError) as exc:
            c.cancel(first["job_id"])
        assert exc.value.code == 409


def test_attach_sends_only_missing_frames_by_path_or_inline(daemon, source, tmp_path):
    with daemon.client() as c:
        job_id = c.submit(job(source, tmp_path / "att"), key="attach", subscribe=False)["job_id"]
        assert c.wait(job_id, timeout=120)["state"] == "done"
    with daemon.client() as c:
        reply = c.attach(job_id, have=[1, [2, 2]])
        assert reply["resend"] == 2
        got = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(m.type == "job_state" for m in got):
            got += c.poll(0.2)
        assert sorted(m.content["frame"] for m in got if m.type == "frame_done") == [3, 4]
        c.attach(job_id, have=[[1, 3]], deliver="inline")
        inline = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(m.type == "job_state" for m in inline):
            inline += c.poll(0.2)
        frames = [m for m in inline if m.type == "frame_done"]
        assert [m.content["frame"] for m in frames] == [4]
        desc = frames[0].buffer_descriptors[0]
        assert desc == {"dtype": "<f2", "shape": [64, 64, 2]}
        arr = np.frombuffer(frames[0].buffers[0], "<f2").reshape(desc["shape"])
        ref, _ = read_ab_exr(ab_frame_path(str(tmp_path / "att"), 4))
        assert np.array_equal(arr, ref.astype("<f2"))


CLIENT_SCRIPT = r"""
import sys, time
from coolcolor_protocol import Client
c = Client(sys.argv[1])
job = {"source": sys.argv[2], "output_dir": sys.argv[3], "steps": 12, "window": 1, "keyframes": [1]}
r = c.submit(job, key="killed-client")
print("JOB", r["job_id"], flush=True)
while True:
    for m in c.poll(0.5):
        if m.type == "frame_done":
            print("FRAME", m.content["frame"], flush=True)
"""


def test_a_killed_client_does_not_stop_its_job_and_a_new_client_gets_only_missing_frames(daemon, source, tmp_path):
    out = tmp_path / "orphan"
    proc = subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, daemon.connection_file, source, str(out)],
                            stdout=subprocess.PIPE, text=True, env=child_env())
    job_id, seen = None, []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not seen:
            line = proc.stdout.readline()
            if not line:
                break
            kind, value = line.split()
            if kind == "JOB":
                job_id = value
            else:
                seen.append(int(value))
    finally:
        proc.kill()
        proc.wait(60)
    assert job_id and seen, "the client never saw a frame"
    with daemon.client() as c:
        status = c.status(job_id)
        assert status["state"] in ("queued", "running", "done")
        c.attach(job_id, have=seen)
        final, events = collect(c, job_id)
    assert final["state"] == "done"
    resent = [e.content["frame"] for e in events if e.type == "frame_done"]
    assert sorted(set(seen) | set(resent)) == [1, 2, 3, 4]
    assert not set(seen) & set(resent), "frames the old client had were sent again"
    assert len(resent) == len(set(resent))


def test_eight_concurrent_clients_get_their_own_events_only(daemon, source, tmp_path):
    results: dict[int, tuple] = {}

    def run(i: int) -> None:
        try:
            with daemon.client(name=f"client-{i}") as c:
                r = c.submit(job(source, tmp_path / f"many{i}", steps=2, seed=100 + i, window=4), key=f"many-{i}")
                final, events = collect(c, r["job_id"], timeout=240)
                others = [m for m in c.poll(0.0)]
                results[i] = (r["job_id"], final, events, others)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = (None, None, [], [exc])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert sorted(results) == list(range(8))
    for i, (job_id, final, events, others) in results.items():
        assert final is not None, others
        assert final["state"] == "done" and final["output_dir"].endswith(f"many{i}")
        assert {e.content["job_id"] for e in events} == {job_id}
        assert not [m for m in others if m.content.get("job_id") not in (None, job_id)]
        assert sorted(e.content["frame"] for e in events if e.type == "frame_done") == [1, 2, 3, 4]
    assert len({r[0] for r in results.values()}) == 8


def test_fuzzed_tampered_and_replayed_messages_are_rejected_and_the_daemon_stays_up(daemon):
    """2,000 hostile messages in CI (bench/bench_daemon_fuzz.py sends more): every tampered signature
    and every replay is refused with 401, and ping still answers."""
    rng = random.Random(7)
    raw = Raw(daemon)
    try:
        def exchange(batch: list[list[bytes]]) -> list:
            for frames in batch:
                raw.send(frames)
            return [raw.recv() for _ in batch]

        # 1. tampered: a valid message with one bit flipped somewhere after the delimiter
        tampered = []
        for _ in range(500):
            frames = raw.build("status", {"job_id": f"{rng.getrandbits(128):032x}"})
            i = rng.randrange(1, len(frames))
            data = bytearray(frames[i])
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            frames[i] = bytes(data)
            tampered.append(frames)
        replies = exchange(tampered)
        assert [r.content["code"] for r in replies] == [401] * 500

        # 2. replayed: valid signed messages sent a second time
        originals = [raw.build("ping") for _ in range(250)]
        assert {r.type for r in exchange(originals)} == {"ping_reply"}
        replies = exchange(originals)
        assert all(r.content["code"] == 401 and "replayed" in r.content["message"] for r in replies)

        # 3. garbage: random frames, signed garbage JSON, wrong types, unknown types, huge fields
        def garbage() -> list[bytes]:
            kind = rng.randrange(6)
            if kind == 0:
                return [rng.randbytes(rng.randrange(0, 40)) for _ in range(rng.randrange(1, 8))]
            if kind == 1:
                return [b"<COOLCOLOR|1>", rng.randbytes(64), rng.randbytes(30), rng.randbytes(30)]
            if kind == 2:
                content = rng.choice([{"job_id": rng.random()}, {"key": 5, "job": []}, {"have": "x"},
                                      {"job": {"source": "a" * 100_000}}, {"x": [[[[[]]]]]}])
                return raw.build(rng.choice(["submit", "status", "attach", "cancel", "list_jobs"]), content)
            if kind == 3:
                return raw.build(rng.choice(["launch", "pong", "submit_reply", "x" * 60]), {})
            if kind == 4:
                frames = raw.build("ping")
                return frames[:rng.randrange(1, 4)]
            frames = raw.build("status", {"job_id": "0" * 32})
            return frames + [rng.randbytes(8) for _ in range(rng.randrange(1, 20))]

        batch = [garbage() for _ in range(1250)]
        replies = exchange(batch)
        assert all(r.type == "error" or r.type.endswith("_reply") for r in replies)
        assert sum(r.type == "error" for r in replies) >= 1200
    finally:
        raw.close()
    with daemon.client() as c:
        assert c.ping(timeout=60) >= 0.0  # still answering
        assert c.status  # still a working client


def test_listening_beyond_loopback_without_curve_is_refused(tmp_path):
    cmd = [sys.executable, "-m", "coolcolor.daemon", "serve", "--tiny-model", "--ip", "0.0.0.0",
           "--state-dir", str(tmp_path / "s"), "--connection-file", str(tmp_path / "c.json")]
    out = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 1
    assert "refusing to listen on 0.0.0.0" in out.stderr and "CURVE" in out.stderr
    assert not (tmp_path / "c.json").exists()


def test_jobs_and_status_commands(daemon):
    env = child_env()
    out = subprocess.run([sys.executable, "-m", "coolcolor.daemon", "jobs", "--connection-file",
                          daemon.connection_file], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert " done " in out.stdout
    job_id = out.stdout.split()[0]
    out = subprocess.run([sys.executable, "-m", "coolcolor.daemon", "status", job_id, "--json", "--connection-file",
                          daemon.connection_file], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and f'"job_id": "{job_id}"' in out.stdout
    out = subprocess.run([sys.executable, "-m", "coolcolor.daemon", "status", "0" * 32, "--connection-file",
                          daemon.connection_file], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 1 and "no job 00000000" in out.stderr and "code 404" in out.stderr


def test_shutdown_request_stops_the_daemon_gracefully(tmp_path):
    proc = DaemonProcess(str(tmp_path), tiny=True).start(wait_model=False)
    with proc.client() as c:
        assert c.shutdown()["state"] == "stopping"
    assert proc.proc.wait(60) == 0
    assert not os.path.exists(proc.connection_file)
