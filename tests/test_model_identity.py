"""The model's identity (``model_hash``) is canonical: the stored weights, whatever device or dtype it
runs in. Outputs, manifests, the daemon's cache and coolcolor.json carry the same value, so a job
started in one dtype resumes in another without redoing frames (issue 11 §5)."""

from __future__ import annotations

import json

import pytest
import torch

from coolcolor.daemon.testing import DaemonProcess, write_gray_sequence
from coolcolor.model.checkpoint import load_components, weights_hash
from coolcolor.model.resolve import TINY_PRESET, resolve_model
from coolcolor.video.exr import read_ab_header
from coolcolor.video.job import ColorizeJob, JobCancelled, JobEvents
from coolcolor.video.run import run_colorize_job

DTYPES = ("fp32", "bf16", "fp16")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from coolcolor.model.presets import tiny_pipeline

    path = tmp_path_factory.mktemp("identity") / "ckpt"
    tiny_pipeline(seed=0).save_pretrained(path)
    return str(path)


def test_hash_does_not_depend_on_the_dtype_it_was_loaded_in(checkpoint):
    fp32 = load_components(checkpoint)
    expected = weights_hash(fp32.unet, fp32.vae, fp32.text_encoder)
    for dtype in DTYPES:
        resolved = resolve_model(checkpoint, device="cpu", dtype=dtype)
        assert resolved.hash == expected  # before loading: from the stored weights
        pipe = resolved.load_pipeline()
        assert pipe.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
        assert pipe.model_hash == expected == pipe.components.weights_hash()
    # The values of a lossy cast really differ: the hash is not simply blind to the weights.
    half = resolve_model(checkpoint, device="cpu", dtype="fp16").load_pipeline()
    assert weights_hash(half.unet, half.vae, half.text_encoder) != expected


def test_casting_a_built_pipeline_keeps_its_identity():
    from coolcolor.model.presets import tiny_pipeline

    pipe = tiny_pipeline(seed=0)
    before = weights_hash(pipe.unet, pipe.vae, pipe.text_encoder)
    pipe.to("cpu", torch.bfloat16)
    assert pipe.dtype == torch.bfloat16 and pipe.model_hash == before
    assert resolve_model(TINY_PRESET, device="cpu", dtype="bf16").load_pipeline().model_hash == before


def test_shipped_weights_hash_is_the_canonical_one_in_every_dtype():
    from coolcolor.default_model import DEFAULT_MODEL_DIR

    shipped = json.loads((DEFAULT_MODEL_DIR / "coolcolor.json").read_text())["provenance"]["weights_hash"]
    for dtype in ("fp32", "bf16"):
        assert resolve_model("default", device="cpu", dtype=dtype).load_pipeline().model_hash == shipped


class CancelAfter(JobEvents):
    def __init__(self, frames: int):
        self.frames, self.done = frames, []

    def frame_done(self, frame: int, path: str) -> None:
        self.done.append(frame)

    def should_cancel(self) -> bool:
        return len(self.done) >= self.frames


def test_a_job_started_in_fp32_resumes_in_bf16_and_fp16_without_redoing_frames(tmp_path, checkpoint):
    source = write_gray_sequence(str(tmp_path / "src"), count=5, size=48)
    job = ColorizeJob(source=source, output_dir=str(tmp_path / "out"), prompt="a red ball", keyframes=[1],
                      steps=2, window=1)
    first = CancelAfter(2)
    with pytest.raises(JobCancelled):
        run_colorize_job(job, resolve_model(checkpoint, "cpu", "fp32").load_pipeline(), first)
    assert 2 <= len(first.done) < 5  # writes already handed over when the cancel came are finished too
    stamp = {f: (tmp_path / "out" / f"ab.{f:04d}.exr").stat().st_mtime_ns for f in first.done}

    resumed = run_colorize_job(job, resolve_model(checkpoint, "cpu", "bf16").load_pipeline())
    assert resumed.frames_skipped == first.done and resumed.ok
    assert resumed.frames_written == [f for f in range(1, 6) if f not in first.done]
    assert {f: (tmp_path / "out" / f"ab.{f:04d}.exr").stat().st_mtime_ns for f in first.done} == stamp

    again = run_colorize_job(job, resolve_model(checkpoint, "cpu", "fp16").load_pipeline())
    assert again.frames_written == [] and again.frames_skipped == [1, 2, 3, 4, 5]
    hashes = {read_ab_header(str(tmp_path / "out" / f"ab.{f:04d}.exr"))["model_hash"] for f in range(1, 6)}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert hashes == {manifest["model"]["hash"]} == {resolve_model(checkpoint, "cpu").hash}


def test_the_daemon_names_the_same_model_in_any_dtype(tmp_path):
    expected = resolve_model(TINY_PRESET, device="cpu").hash
    with DaemonProcess(str(tmp_path), args=("--device", "cpu", "--dtype", "bf16")) as daemon:
        with daemon.client(timeout=30) as c:
            model = c.hello()["model"]
    assert model["dtype"] == "bf16" and model["hash"] == expected
