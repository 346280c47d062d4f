"""The daemon speaks JobSpec: submit_reply names the output files, unknown job fields are journaled,
and frames_done means the same in every event (SPEC §5.2, §6)."""

from __future__ import annotations

import os

import pytest

from coolcolor.daemon.testing import DaemonProcess, write_gray_sequence
from coolcolor_protocol import abfiles


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    proc = DaemonProcess(str(tmp_path_factory.mktemp("daemon"))).start()
    yield proc
    proc.stop(30)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    return write_gray_sequence(str(tmp_path_factory.mktemp("src")), count=4, size=64)


def test_submit_reply_names_the_output_and_the_journal_keeps_unknown_fields(daemon, source, tmp_path):
    out = tmp_path / "out"
    job = {"source": source, "output_dir": str(out), "steps": 2, "window": 2, "keyframes": [2],
           "resolve_sidecar": True, "grain_from_a_newer_client": {"amount": 0.3}}
    with daemon.client() as c:
        reply = c.submit(job, key="output-and-extras")
        output = reply["output"]
        assert output["dir"] == str(out) and output["pattern"] == str(out / abfiles.AB_FILE_PATTERN)
        assert (output["first"], output["last"]) == (1, 4)  # null in the request: the source's own bounds
        assert output["sidecar_pattern"] == str(out / abfiles.RESOLVE_SIDECAR_PATTERN)
        assert output["rgb_pattern"] is None
        assert (reply["first"], reply["last"]) == (1, 4)
        events = []
        final = c.wait(reply["job_id"], timeout=240, on_event=events.append)
        assert final["state"] == "done", final
        journaled = c.status(reply["job_id"])["job"]
        assert journaled["grain_from_a_newer_client"] == {"amount": 0.3}
        again = c.submit(job, key="output-and-extras")  # the same job again: the same output
        assert again["duplicate"] is True and again["output"] == output
    for frame in range(output["first"], output["last"] + 1):
        assert os.path.isfile(abfiles.frame_file(output["pattern"], frame))
        assert os.path.isfile(abfiles.frame_file(output["sidecar_pattern"], frame))
    progress = [e.content for e in events if e.type == "progress" and e.content.get("state") == "running"]
    announced = [e for e in events if e.type == "frame_done"]
    assert progress and all(p["frames_failed"] == 0 for p in progress)
    done = [p["frames_done"] for p in progress]
    assert done == sorted(done) and max(done) <= len(announced) == 4
    final_state = [e.content for e in events if e.type == "job_state"][-1]
    assert final_state["frames_done"] == final["frames_done"] == 4
