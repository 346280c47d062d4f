"""The Ray segment runner on a local cluster (127.0.0.1, started once for the module, tiny model, few frames).

Faults are placed by events, never by sleeps, with ``coolcolor.faults``' one grammar (``COOLCOLOR_FAULT``): the
driver sends its value with each task, so ``window_first_written:N`` makes a worker SIGKILL itself after writing
the first frame of its N-th window; the driver's own points are the same (``frame_written``: its N-th frame_done).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from coolcolor import faults  # noqa: E402
from coolcolor.errors import CoolColorError, InputError  # noqa: E402
from coolcolor.video.exr import read_ab_exr, read_ab_header  # noqa: E402
from coolcolor.video.job import ColorizeJob, JobCancelled  # noqa: E402
from coolcolor.video.run import run_colorize_job, run_job  # noqa: E402
from coolcolor.scaleout.ray_cluster import RaySegmentRunner, connect_ray, start_local_ray  # noqa: E402
from test_video_job import (  # noqa: E402
    Recorder,
    ab_by_frame,
    graded_reference,
    one_shot_sequence,
    torch_threads,
    two_shot_sequence,
)

ROOT = Path(__file__).resolve().parents[1]
FRAMES = range(1, 9)


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for the module: loopback only, no dashboard, a 100 MB object store. Four
    logical CPUs so that a second driver (the CLI in a subprocess) can get a worker beside the pool.

    Ray starts its workers at nice 15 (its ``worker_niceness`` setting, read by the raylet from
    ``RAY_worker_niceness``). On a machine whose cores are busy with other work that starves them — the
    tests still pass, their waits are generous, but a loaded suite crawled for a quarter of an hour — so
    this cluster's workers run at the niceness of the test process."""
    with pytest.MonkeyPatch.context() as env:  # only the raylet's start reads it
        env.setenv("RAY_worker_niceness", "0")
        address = start_local_ray(num_cpus=4)
    yield address
    ray.shutdown()


@pytest.fixture(scope="module")
def pool(cluster, model_dir):
    executor = RaySegmentRunner(model_dir, workers=2, max_task_retries=1)  # 2 tries: each kill costs a restart
    yield executor
    executor.close()


def _no_temporaries(folder: Path) -> None:
    assert [p.name for p in folder.iterdir() if ".tmp" in p.name or p.name.startswith(".coolcolor-probe")] == []


def test_the_cluster_listens_on_loopback_only(cluster):
    import psutil

    assert cluster.startswith("127.0.0.1:")
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    ours = {p.pid for p in psutil.Process().children(recursive=True)}
    listening = {c.laddr.ip for c in psutil.net_connections("inet") if c.status == "LISTEN" and c.pid in ours}
    assert listening and listening <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening


def test_local_one_and_two_ray_workers_give_bit_identical_ab(tmp_path, cluster, model_dir, request):
    """Same job + seed → the same bytes of a*, b* wherever the windows ran; two workers share one shot."""
    from coolcolor.model.pipeline import CoolColorPipeline

    source = two_shot_sequence(tmp_path / "src", per_shot=5)  # two shots: one artist, one automatic keyframe
    settings = dict(source=source, keyframes=[2], steps=2, window=2, seed=7, prompt="a red ball")
    with torch_threads(1):  # as each Ray worker
        local = run_colorize_job(ColorizeJob(output_dir=str(tmp_path / "local"), **settings),
                                 CoolColorPipeline.from_pretrained(model_dir, device="cpu"))
    assert local.ok and local.frames_written == list(range(1, 11))

    one = RaySegmentRunner(model_dir, workers=1)
    try:
        on_one = run_job(ColorizeJob(output_dir=str(tmp_path / "ray1"), **settings), one)
    finally:
        one.close()
    pool = request.getfixturevalue("pool")
    on_two = run_job(ColorizeJob(output_dir=str(tmp_path / "ray2"), **settings), pool)

    assert on_one.keyframes == on_two.keyframes == local.keyframes
    expected = ab_by_frame(tmp_path / "local")
    for name in ("ray1", "ray2"):
        got = ab_by_frame(tmp_path / name)
        assert sorted(got) == sorted(expected)
        for frame, ab in expected.items():
            np.testing.assert_array_equal(got[frame], ab, err_msg=f"{name} frame {frame}")
        _no_temporaries(tmp_path / name)
    assert on_two.timings["ray_tasks"] >= 5 and len({r["pid"] for r in pool.last_records}) == 2


def test_a_reference_keyframe_gives_the_same_ab_on_ray_as_locally(tmp_path, model_dir, pool):
    """Issue 25 on Ray: the workers get the driver's checked references and the shots' bounds, so a frame
    reference of the first shot guides that shot only, as in a local run (the workers used to take the
    whole job for one shot, and the second shot followed the first shot's graded frame too)."""
    from coolcolor.model.pipeline import CoolColorPipeline

    source = two_shot_sequence(tmp_path / "src", per_shot=8)
    reference = graded_reference(tmp_path / "graded.0002.exr", 1)
    settings = dict(source=source, keyframes=[12], steps=2, window=4, seed=5, prompt="a red ball",
                    references=[{"frame": 2, "path": reference}])
    with torch_threads(1):  # as each Ray worker
        local = run_colorize_job(ColorizeJob(output_dir=str(tmp_path / "local"), **settings),
                                 CoolColorPipeline.from_pretrained(model_dir, device="cpu"))
    on_ray = run_job(ColorizeJob(output_dir=str(tmp_path / "ray"), **settings), pool)
    assert local.ok and on_ray.ok and on_ray.keyframes == local.keyframes
    assert {local.keyframes[f] for f in range(1, 9)} == {2} and {local.keyframes[f] for f in range(9, 17)} == {12}
    expected, got = ab_by_frame(tmp_path / "local"), ab_by_frame(tmp_path / "ray")
    assert sorted(got) == sorted(expected) == list(range(1, 17))
    for frame, ab in expected.items():
        np.testing.assert_array_equal(got[frame], ab, err_msg=f"frame {frame}")
    headers = [read_ab_exr(str(tmp_path / name / "ab.0013.exr"))[1] for name in ("local", "ray")]
    assert headers[0]["references"] == headers[1]["references"]  # the driver's checked references, with sha256


def test_windows_of_one_shot_spread_over_the_pool(tmp_path, pool):
    source = one_shot_sequence(tmp_path / "src", FRAMES)
    result = run_job(ColorizeJob(source=source, output_dir=str(tmp_path / "out"), keyframes=[1], steps=1, window=1),
                     pool)
    assert result.ok and result.frames_written == list(FRAMES)
    workers = {record["pid"] for record in pool.last_records}
    assert len(workers) == 2, f"one shot, {len(list(FRAMES))} windows, but only worker(s) {workers} ran"


def test_a_worker_killed_mid_task_is_retried_every_frame_once(tmp_path, pool, monkeypatch):
    """Four windows on two workers, two queued on each: each worker dies after the first frame of its second
    window; its restarted process counts from 1 again, so the retry of that window finishes."""
    source = one_shot_sequence(tmp_path / "src", FRAMES)
    monkeypatch.setenv(faults.ENV, faults.spec("window_first_written", 2))
    events = Recorder()
    result = run_job(ColorizeJob(source=source, output_dir=str(tmp_path / "out"), keyframes=[1], steps=1, window=2),
                     pool, events)
    assert len(pool.last_records) == 4
    assert len({record["pid"] for record in pool.last_records}) == 4, "no worker was killed and restarted"
    assert result.ok and result.frames_written == list(FRAMES)
    assert sorted(events.done) == list(FRAMES)  # each frame announced exactly once
    assert sorted(ab_by_frame(tmp_path / "out")) == list(FRAMES)
    _no_temporaries(tmp_path / "out")


def test_a_window_that_keeps_killing_its_worker_fails_the_job_naming_it(tmp_path, pool, monkeypatch):
    """Every window kills its worker after its first frame, every try (a restarted worker counts afresh):
    the job fails naming the window whose tries ran out first."""
    source = one_shot_sequence(tmp_path / "src", FRAMES)
    monkeypatch.setenv(faults.ENV, faults.spec("window_first_written", 1))
    out = tmp_path / "out"
    job = ColorizeJob(source=source, output_dir=str(out), keyframes=[1], steps=1, window=4)  # one window each
    with pytest.raises(CoolColorError, match=r"window (1-4|5-8) \(keyframe 1\) failed on Ray after 2 tries") as caught:
        run_job(job, pool)

    named = 1 if "window 1-4" in str(caught.value) else 5
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed" and f"window {named}-{named + 3}" in manifest["error"]
    assert read_ab_header(str(out / f"ab.{named:04d}.exr")) is not None  # written (whole) before each kill
    assert not (out / "ab.0002.exr").exists() and not (out / "ab.0006.exr").exists()  # never past a kill
    monkeypatch.delenv(faults.ENV)
    again = run_job(job, pool)
    assert again.ok and sorted(again.frames_skipped + again.frames_written) == list(FRAMES)
    assert named in again.frames_skipped and set(again.frames_skipped) <= {1, 5}
    _no_temporaries(out)


def test_a_killed_driver_rerun_dispatches_only_the_missing_frames(tmp_path, cluster, model_dir, pool):
    source = one_shot_sequence(tmp_path / "src", FRAMES)
    out = tmp_path / "out"
    env = {**os.environ, faults.ENV: faults.spec("frame_written", 2), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "backend"), str(ROOT / "protocol")])}
    command = [sys.executable, "-c", "import sys; from coolcolor.cli import main; sys.exit(main(sys.argv[1:]))",
               "colorize", source, "-o", str(out), "--keyframe", "1", "--steps", "1", "--window", "2",
               "--model", model_dir, "--ray", cluster, "--ray-workers", "1"]
    died = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert died.returncode == -9, died.stderr[-2000:]
    before = sorted(ab_by_frame(out))
    assert 2 <= len(before) < len(FRAMES)
    events = Recorder()
    again = run_job(ColorizeJob(source=source, output_dir=str(out), keyframes=[1], steps=1, window=2), pool, events)
    assert again.frames_skipped == before
    assert sorted(again.frames_written) == [f for f in FRAMES if f not in before] == sorted(events.done)
    _no_temporaries(out)


def test_cancel_stops_the_ray_tasks_keeps_finished_frames_and_a_rerun_resumes(tmp_path, pool):
    source = one_shot_sequence(tmp_path / "src", FRAMES)
    job = ColorizeJob(source=source, output_dir=str(tmp_path / "out"), keyframes=[1], steps=2, window=1)
    events = Recorder(cancel_after=1)
    with pytest.raises(JobCancelled):
        run_job(job, pool, events)
    kept = sorted(ab_by_frame(tmp_path / "out"))
    assert sorted(events.done) == kept and 1 <= len(kept) < len(FRAMES)
    again = run_job(job, pool)
    assert again.frames_skipped == kept and sorted(again.frames_written) == [f for f in FRAMES if f not in kept]


# ----------------------------------------------------------------------------- bad input


def test_an_unreachable_address_is_one_clear_error():
    with pytest.raises(InputError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:9: "):
        connect_ray("127.0.0.1:9")
    with pytest.raises(InputError, match="local:N needs a worker count"):
        connect_ray("local:0")
    with pytest.raises(InputError, match="expected auto, local:N or HOST:PORT"):
        connect_ray("nowhere")


def test_a_cluster_without_the_resources_asked_for(cluster, model_dir):
    with pytest.raises(InputError, match=r"the Ray cluster has 4 CPU\(s\); 9 worker\(s\) need 9"):
        RaySegmentRunner(model_dir, workers=9)
    with pytest.raises(InputError, match="no GPU"):
        RaySegmentRunner(model_dir, workers=1, device="cuda")


def test_a_model_path_missing_on_the_workers(cluster, tmp_path):
    with pytest.raises(InputError, match=r"cannot load the model: model folder not found: .*no-such-model"):
        RaySegmentRunner(str(tmp_path / "no-such-model"), workers=1)


def test_an_output_folder_the_workers_do_not_share(tmp_path, pool, monkeypatch):
    """The driver proves each worker sees its output folder with a probe file it writes there. Here the
    workers are told to look for a probe the driver never wrote (as a worker on another machine, whose
    local disk has its own folder of that name, would find none): the job fails with that reason."""
    source = one_shot_sequence(tmp_path / "src", range(1, 3))
    real_begin = RaySegmentRunner._begin

    def probe_elsewhere(self, run):
        run_id, probe = real_begin(self, run)
        return run_id, probe + ".on-another-machine"

    monkeypatch.setattr(RaySegmentRunner, "_begin", probe_elsewhere)
    with pytest.raises(InputError, match=r"is not the driver's folder on Ray worker .*must be shared storage"):
        run_job(ColorizeJob(source=source, output_dir=str(tmp_path / "out"), keyframes=[1], steps=1), pool)
    assert list((tmp_path / "out").glob("ab.*.exr")) == []


def test_the_daemon_executor_on_ray_cancels_and_resumes(tmp_path, cluster, model_dir):
    """``RayJobExecutor`` is what ``serve --ray`` hands the job board: load → run(job, events) → close.
    The board's cancel arrives as ``events.should_cancel()``; the Ray tasks stop, finished frames stay."""
    from coolcolor.daemon.ray_executor import RayJobExecutor

    executor = RayJobExecutor(cluster, model=model_dir, workers=1)
    served = executor.load()
    try:
        assert served["hash"] == executor.pool.model_hash and served["device"].startswith("ray:1x")
        from coolcolor.model.presets import tiny_components
        from coolcolor.model.prompt_words import known_words

        assert served["known_words"] == len(known_words(tiny_components(seed=0).tokenizer))  # hello_reply's count
        source = one_shot_sequence(tmp_path / "src", FRAMES)
        job = ColorizeJob(source=source, output_dir=str(tmp_path / "out"), keyframes=[1], steps=1, window=2)
        board = Recorder(cancel_after=2)
        with pytest.raises(JobCancelled):
            executor.run(job, board)
        kept = sorted(ab_by_frame(tmp_path / "out"))
        assert sorted(board.done) == kept and 2 <= len(kept) < len(FRAMES)
        again = executor.run(job, Recorder())
        assert again.frames_skipped == kept and sorted(again.frames_skipped + again.frames_written) == list(FRAMES)

        # the driver holds no model: the words the workers' model ignores come from a worker, for the
        # daemon's submit reply and the manifest, as with the local executor
        from coolcolor.model.presets import tiny_pipeline

        prompt = "a red astronaut ball in a suit"
        assert executor.unknown_words(prompt) == tiny_pipeline(seed=0).unknown_words(prompt) == ["astronaut", "suit"]
        worded = ColorizeJob(source=source, output_dir=str(tmp_path / "worded"), keyframes=[1], steps=1, window=4,
                             prompt=prompt)
        assert executor.run(worded, Recorder()).ok
        manifest = json.loads((tmp_path / "worded" / "manifest.json").read_text())
        assert manifest["unknown_words"] == ["astronaut", "suit"]
    finally:
        executor.close()
    assert ray.is_initialized()  # the executor did not start this cluster, so it leaves it running


def test_serve_with_an_unreachable_ray_address_says_so_and_keeps_answering(tmp_path):
    """``coolcolor serve --ray ADDRESS``: the executor is the Ray pool; a cluster that is not there is the
    model's failure, named in hello and in the refusal of a submit, while the daemon stays up."""
    from coolcolor.daemon.testing import DaemonProcess
    from coolcolor_protocol import ProtocolError

    daemon = DaemonProcess(str(tmp_path / "d"), args=("--ray", "127.0.0.1:9"))
    with pytest.raises(RuntimeError, match=r"model failed to load:(.|\n)*cannot reach the Ray cluster at 127\.0\.0\.1:9"):
        daemon.start()
    try:
        with daemon.client(timeout=30) as c:
            model = c.hello()["model"]
            assert model["state"] == "failed" and "cannot reach the Ray cluster at 127.0.0.1:9" in model["error"]
            with pytest.raises(ProtocolError, match="the model failed to load: .*Ray cluster"):
                c.submit({"source": str(tmp_path / "x.%04d.png"), "output_dir": str(tmp_path / "o")}, key="k")
    finally:
        daemon.stop(60)


def test_a_ray_run_owns_its_folder_until_killed_then_the_same_job_takes_over(tmp_path, cluster, model_dir, pool):
    """Issue 27 §1 on Ray: a Ray driver (the CLI, in its own process) holds its output folder; another job
    is refused at once naming it; the same job waits for it; after a kill -9 of the driver the waiting run
    takes the folder over and computes only the frames the dead run had not finished."""
    import threading

    from coolcolor.video.ownership import HOST, OWNER_FILE, FolderBusy, read_owner

    source = one_shot_sequence(tmp_path / "src", FRAMES)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", faults.ENV: faults.spec("frame_written", 2, "pause"),
           faults.RESUME_ENV: str(tmp_path / "never"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "backend"), str(ROOT / "protocol")])}
    command = [sys.executable, "-c", "import sys; from coolcolor.cli import main; sys.exit(main(sys.argv[1:]))",
               "colorize", source, "-o", str(out), "--keyframe", "1", "--steps", "1", "--window", "2",
               "--model", model_dir, "--ray", cluster, "--ray-workers", "1"]
    driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in driver.stderr:  # an event: the driver announced its second frame and holds there
            if "pause at frame_written" in line:
                break
        else:
            pytest.fail(f"the Ray driver exited {driver.wait()} before its fault point")
        owner = read_owner(str(out))
        assert owner is not None and owner["pid"] == driver.pid and owner["host"] == HOST

        other = ColorizeJob(source=source, output_dir=str(out), keyframes=[1], steps=1, window=2, prompt="a blue sky")
        with pytest.raises(FolderBusy, match=rf"being written by another job \(prompt '', .*pid {driver.pid} on "):
            run_job(other, pool)

        waiting = threading.Event()

        class Waiter(Recorder):
            def waiting(self, message):
                waiting.set()

        events, outcome = Waiter(), {}

        def same_job() -> None:
            try:
                outcome["result"] = run_job(ColorizeJob(source=source, output_dir=str(out), keyframes=[1], steps=1,
                                                        window=2), pool, events)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                outcome["error"] = exc

        thread = threading.Thread(target=same_job)
        thread.start()
        assert waiting.wait(600), outcome
        assert not events.done  # it waits: nothing computed while the folder is held
        finished_before_kill = set(ab_by_frame(out))
        driver.kill()
        assert driver.wait(60) == -9
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    thread.join(900)
    assert "error" not in outcome, outcome
    result = outcome["result"]
    assert len(finished_before_kill) >= 2 and set(result.frames_skipped) >= finished_before_kill
    assert not set(result.frames_written) & set(result.frames_skipped)
    assert sorted(result.frames_written + result.frames_skipped) == list(FRAMES)
    assert len({read_ab_header(str(p))["job_key"] for p in out.glob("ab.*.exr")}) == 1  # one job's frames
    assert not (out / OWNER_FILE).exists()
    _no_temporaries(out)
