"""File modes (issue 27 §2): results are readable by the rest of a studio as the umask says; secrets are not.

Every output goes through ``coolcolor.video.exr.atomic_write``; the daemon's connection file (it holds the
HMAC key) through ``coolcolor_protocol.connection.write_connection_file``.
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager

import pytest

from coolcolor.video.job import ColorizeJob
from coolcolor.video.run import run_colorize_job
from coolcolor_protocol.connection import write_connection_file
from test_video_job import one_shot_sequence

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def _modes(folder) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)],
                         ids=["umask022", "umask002", "umask077"])
def test_every_output_of_a_job_has_the_umasks_ordinary_mode(tmp_path, tiny_pipe, mask, expected):
    source = one_shot_sequence(tmp_path / "src", range(1, 3))
    out = tmp_path / "out"
    job = ColorizeJob(source=source, output_dir=str(out), keyframes=[1], steps=1, preview=True,
                      resolve_sidecar=True, rgb_plate=True)
    with umask(mask):
        assert run_colorize_job(job, tiny_pipe).ok
    modes = _modes(out)
    kinds = {name.split(".")[0] for name in modes}
    assert {"ab", "preview", "ab_rg", "rgb", "manifest"} <= kinds, sorted(modes)
    assert {name: mode for name, mode in modes.items() if mode != expected} == {}, f"expected {expected:o}"


def test_the_connection_file_stays_private_under_a_group_umask(tmp_path):
    info = {"transport": "tcp", "ip": "127.0.0.1", "port": 5555, "key": "secret", "signature_scheme": "hmac-sha256",
            "session": "s"}
    with umask(0o002):
        path = write_connection_file(info, str(tmp_path / "state" / "connection.json"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
