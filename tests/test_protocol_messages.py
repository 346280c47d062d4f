"""Request schemas (every field checked, named in the error) and connection files."""

from __future__ import annotations

import os
import re
import stat

import pytest

from coolcolor_protocol import (
    ProtocolError,
    endpoint,
    find_connection_file,
    read_connection_file,
    validate_request,
    write_connection_file,
)
from coolcolor_protocol.messages import MAX_FRAMES_PER_JOB, MAX_PROMPT_CHARS, parse_frame_set

JOB = {"source": "/shots/a.%04d.exr", "output_dir": "/out/a"}


def submit(**job):
    return validate_request("submit", {"key": "k1", "job": dict(JOB, **job)})


def test_submit_defaults_are_filled_and_unknown_job_fields_kept():
    out = validate_request("submit", {"key": "k", "job": dict(JOB, future_field=1), "also_unknown": 2})
    assert out["deliver"] == "path" and out["subscribe"] is True
    assert "also_unknown" not in out
    job = out["job"]
    assert job["future_field"] == 1  # a newer client's job field: kept (journaled), used by nobody
    assert (job["steps"], job["seed"], job["guidance_scale"], job["encoding"], job["keyframes"]) == (20, 0, 5.0, "srgb", [])


@pytest.mark.parametrize(
    "job, code, words",
    [
        ({"source": None}, 400, "submit.job.source: is required"),
        ({"source": 5}, 400, "submit.job.source: must be a string"),
        ({"output_dir": ""}, 400, "submit.job.output_dir: must not be empty"),
        ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, 413, "submit.job.prompt"),
        ({"prompt": "red\x00ball"}, 400, "control characters"),
        ({"first": -1}, 400, "submit.job.first: -1 is outside"),
        ({"first": 1.5}, 400, "must be an integer"),
        ({"first": True}, 400, "must be an integer"),
        ({"first": 10, "last": 5}, 400, "last (5) is before first (10)"),
        ({"first": 1, "last": MAX_FRAMES_PER_JOB + 1}, 413, "split the shot"),
        ({"keyframes": "3"}, 400, "keyframes: must be a list"),
        ({"keyframes": list(range(100))}, 413, "keyframes"),
        ({"first": 1, "last": 5, "keyframes": [9]}, 400, "keyframe 9 is outside the frame range 1..5"),
        ({"steps": 0}, 400, "steps: 0 is outside"),
        ({"guidance_scale": float("inf")}, 400, "guidance_scale"),
        ({"guidance_scale": "5"}, 400, "guidance_scale"),
        ({"seed": 2**40}, 400, "seed"),
        ({"preview": "yes"}, 400, "preview: must be true or false"),
    ],
)
def test_bad_job_fields_are_named(job, code, words):
    with pytest.raises(ProtocolError) as exc:
        submit(**job)
    assert exc.value.code == code
    assert words in exc.value.message


@pytest.mark.parametrize(
    "msg_type, content, words",
    [
        ("submit", {"job": JOB}, "submit.key: is required"),
        ("submit", {"key": "k" * 500, "job": JOB}, "submit.key"),
        ("submit", {"key": "k", "job": JOB, "deliver": "email"}, "submit.deliver: must be one of"),
        ("submit", {"key": "k", "job": [1]}, "submit.job: must be an object"),
        ("status", {"job_id": "../../etc"}, "status.job_id"),
        ("cancel", {}, "cancel.job_id"),
        ("attach", {"job_id": "0" * 32, "have": [[5, 1]]}, "neither a frame number nor a [first, last] range"),
        ("list_jobs", {"states": ["sleeping"]}, "list_jobs.states"),
        ("list_jobs", {"limit": 0}, "list_jobs.limit"),
        ("hello", {"protocol": "one"}, "hello.protocol"),
        ("launch_missiles", {}, "unknown message type 'launch_missiles'"),
    ],
)
def test_bad_requests_are_named(msg_type, content, words):
    with pytest.raises(ProtocolError) as exc:
        validate_request(msg_type, content)
    assert exc.value.code in (400, 413)
    assert words in exc.value.message


def test_attach_have_accepts_frames_and_ranges():
    assert parse_frame_set([1, [3, 5], 4, 9], "have") == [1, 3, 4, 5, 9]
    with pytest.raises(ProtocolError) as exc:
        parse_frame_set([[0, 10_000_000]], "have")
    assert exc.value.code == 400


def test_connection_file_is_private_atomic_and_round_trips(tmp_path, monkeypatch):
    path = tmp_path / "rt" / "daemon.json"
    info = {"transport": "tcp", "ip": "127.0.0.1", "port": 5555, "key": "ab" * 32,
            "signature_scheme": "hmac-sha256", "session": "s1", "pid": 1}
    write_connection_file(info, str(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["daemon.json"]  # no temporary left behind
    loaded = read_connection_file(str(path))
    assert {k: loaded[k] for k in info} == info
    assert endpoint(loaded) == "tcp://127.0.0.1:5555"
    assert endpoint(dict(loaded, ip="0.0.0.0")) == "tcp://127.0.0.1:5555"

    monkeypatch.setenv("COOLCOLOR_CONNECTION_FILE", str(path))
    assert find_connection_file() == str(path)
    monkeypatch.setenv("COOLCOLOR_CONNECTION_FILE", str(tmp_path / "nope.json"))
    with pytest.raises(ProtocolError, match="no CoolColor daemon connection file at .*nope.json"):
        find_connection_file()
    (tmp_path / "bad.json").write_text('{"transport": "tcp"}')
    with pytest.raises(ProtocolError, match="lacks"):
        read_connection_file(str(tmp_path / "bad.json"))


def test_a_connection_file_whose_daemon_process_is_gone_is_stale(tmp_path):
    """Issue 27: after a kill -9 the file stays; it names its pid and host, so a client can tell at once."""
    import socket
    import subprocess
    import sys

    from coolcolor_protocol import DaemonUnavailable

    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()  # reaped: no process has this pid now
    base = {"transport": "tcp", "ip": "127.0.0.1", "port": 5555, "key": "ab" * 32,
            "signature_scheme": "hmac-sha256", "session": "s1"}
    path = str(tmp_path / "daemon.json")
    write_connection_file(dict(base, pid=exited.pid, host=socket.gethostname()), path)
    with pytest.raises(DaemonUnavailable, match=(
            rf"^\[503\] the CoolColor daemon is not running: connection file {re.escape(path)} is stale \(its daemon, pid "
            rf"{exited.pid} on .*, has exited\); start it with `coolcolor serve`$")) as caught:
        read_connection_file(path)
    assert caught.value.code == 503
    # A live process, another host, or a file without them: nothing is concluded (the client asks).
    for info in (dict(base, pid=os.getpid(), host=socket.gethostname()), dict(base, pid=exited.pid, host="farm-07"),
                 dict(base, pid=exited.pid)):
        write_connection_file(info, path)
        assert read_connection_file(path)["session"] == "s1"


def test_runtime_dir_follows_the_environment(monkeypatch, tmp_path):
    from coolcolor_protocol import default_connection_file, runtime_dir

    monkeypatch.setenv("COOLCOLOR_RUNTIME_DIR", str(tmp_path))
    assert runtime_dir() == str(tmp_path)
    assert default_connection_file() == str(tmp_path / "daemon.json")
    monkeypatch.delenv("COOLCOLOR_RUNTIME_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    assert runtime_dir() == str(tmp_path / "xdg" / "coolcolor")
