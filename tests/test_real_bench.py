"""The real-footage benchmark (coolcolor.real.bench, `coolcolor real …`): metrics with known answers on
synthetic data, clip building on images and a movie made here, the catalog's hold-out, and one run of the
whole bench with the tiny preset. No installed real-footage data is needed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from coolcolor import cli
from coolcolor.color import gray_to_lightness, rgb_to_lab
from coolcolor.errors import InputError
from coolcolor.real import bench
from coolcolor.real.catalog import RealItem, load_catalog, parse_catalog
from coolcolor.world import ciede2000, luminance_gray

RED, BLUE, OLIVE = (0.8, 0.15, 0.1), (0.1, 0.2, 0.85), (0.45, 0.5, 0.2)


def uniform(rgb, frames=3, h=12, w=16) -> np.ndarray:
    return np.broadcast_to(np.asarray(rgb, np.float32), (frames, h, w, 3)).copy()


def textured(frames=4, h=24, w=32, shift=0) -> np.ndarray:
    """Colour stripes and a gradient, moved ``shift`` px right per frame (0: a static clip)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for t in range(frames):
        xs = x - shift * t
        out.append(np.stack([0.5 + 0.4 * np.sin(xs / 3), 0.3 + 0.4 * y / h, 0.5 + 0.4 * np.cos(xs / 5)], -1))
    return np.clip(np.stack(out), 0, 1).astype(np.float32)


def gray_rgb(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(luminance_gray(rgb)[..., None], 3, -1)


# -- metrics with known answers ------------------------------------------------------------------------


def test_a_result_equal_to_the_truth_scores_zero_and_chroma_ratio_one():
    truth = textured()
    m = bench.clip_metrics(truth, luminance_gray(truth), truth, uniform(BLUE, 4, 24, 32))
    assert m["delta_e"] == pytest.approx(0, abs=1e-3)
    assert m["chroma_ratio"] == pytest.approx(1, abs=1e-4)
    assert m["chroma"] == pytest.approx(m["chroma_truth"], rel=1e-4) and m["chroma_truth"] > 10
    assert m["ratio_to_gray"] == pytest.approx(0, abs=1e-4) and m["below_gray"]
    assert m["delta_e_wrong"] > 10 and m["truthful_beats_wrong"]
    assert m["flicker_ab"] == pytest.approx(m["flicker_ab_truth"], abs=1e-4)
    assert m["cdc_ab"] == pytest.approx(m["cdc_ab_truth"], abs=1e-6)


@pytest.mark.parametrize("colour", [RED, BLUE, OLIVE])
def test_gray_baseline_of_a_uniform_colour_is_its_ciede2000_from_its_own_gray(colour):
    truth = uniform(colour)
    expected = float(ciede2000(rgb_to_lab(np.asarray(colour, np.float32)),
                               rgb_to_lab(gray_rgb(np.asarray(colour, np.float32)[None, None]))[0, 0]))
    assert expected > 5  # a coloured patch: leaving it gray is far off
    got = bench.gray_baseline(np.asarray(rgb_to_lab(truth), np.float64))
    assert got == pytest.approx(expected, abs=0.05)
    # a result that is the gray itself scores exactly the baseline: ratio 1, no chroma
    m = bench.clip_metrics(truth, luminance_gray(truth), gray_rgb(truth), truth)
    assert m["delta_e_gray"] == pytest.approx(got)
    assert m["ratio_to_gray"] == pytest.approx(1, abs=0.01)
    assert m["chroma"] == pytest.approx(0, abs=0.05) and m["chroma_ratio"] == pytest.approx(0, abs=0.01)
    assert not m["truthful_beats_wrong"]  # the "wrong" result is the truth here


def test_delta_e_is_taken_at_the_truths_lightness():
    truth = uniform(RED)
    darker = uniform((0.4, 0.075, 0.05))  # same hue, another L*: only a*, b* differ from what counts
    lab_truth = np.asarray(rgb_to_lab(truth), np.float64)
    ab = np.asarray(rgb_to_lab(darker), np.float64)[..., 1:]
    expected = float(ciede2000(np.concatenate([lab_truth[..., :1], ab], -1), lab_truth).mean())
    assert bench.delta_e_at_truth_lightness(darker, lab_truth) == pytest.approx(expected)
    assert expected < float(ciede2000(np.asarray(rgb_to_lab(darker), np.float64), lab_truth).mean())


def test_truthful_versus_wrong_and_the_summary_counts():
    truth = uniform(RED)
    near = uniform((0.75, 0.2, 0.12))
    gray = luminance_gray(truth)
    good = bench.clip_metrics(truth, gray, near, uniform(BLUE))
    bad = bench.clip_metrics(truth, gray, uniform(BLUE), near)
    assert good["truthful_beats_wrong"] and good["delta_e"] < good["delta_e_wrong"]
    assert not bad["truthful_beats_wrong"] and bad["delta_e"] > bad["delta_e_wrong"]
    assert good["below_gray"] and not bad["below_gray"]  # blue on red is further than gray
    s = bench.summarise([{**good, "id": "a"}, {**bad, "id": "b"}])
    assert s["clips"] == 2 and s["below_gray"] == 1 and s["truthful_beats_wrong"] == 1
    assert s["delta_e"] == pytest.approx((good["delta_e"] + bad["delta_e"]) / 2)
    assert s["ratio_to_gray"] == pytest.approx((good["ratio_to_gray"] + bad["ratio_to_gray"]) / 2)


def test_a_static_clip_does_not_flicker_and_a_flickering_one_does():
    truth = textured(shift=0)
    gray = luminance_gray(truth)
    m = bench.clip_metrics(truth, gray, truth, truth)
    assert m["flicker_ab"] == pytest.approx(0, abs=1e-6) and m["flicker_ab_truth"] == pytest.approx(0, abs=1e-6)
    assert m["cdc_ab"] == pytest.approx(0, abs=1e-9)
    flicker = truth.copy()
    flicker[1::2] = gray_rgb(truth)[1::2]  # every other frame loses its colour
    m = bench.clip_metrics(truth, gray, flicker, truth)
    assert m["flicker_ab"] > 5 and m["cdc_ab"] > 0.1


# -- clips ----------------------------------------------------------------------------------------------


def coordinate_image(w: int, h: int) -> np.ndarray:
    """Red = x, green = y: a crop says where it came from."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([x / (w - 1), y / (h - 1), np.full_like(x, 0.5)], -1)


def test_pan_windows_start_top_left_end_bottom_right_and_zoom_in():
    windows = bench.pan_windows((400, 300), 8, (64, 48))
    assert len(windows) == 8
    assert windows[0] == (0, 0, 340, 255)  # 85 % of the largest 4:3 window (400×300)
    assert windows[-1] == (100, 75, 300, 225)  # 75 %, touching the bottom-right corner
    sides = [w for _, _, w, _ in windows]
    assert sides == sorted(sides, reverse=True)
    lefts = [x for x, *_ in windows]
    assert lefts == sorted(lefts)
    for x, y, w, h in windows:
        assert abs(w / h - 4 / 3) < 0.01 and x + w <= 400 and y + h <= 300
    # a portrait photograph: the window is as wide as the image allows
    assert bench.pan_windows((300, 600), 2, (64, 48))[0] == (0, 0, 255, 191)


def test_pan_clip_frames_are_the_windows_resized_and_the_gray_is_the_truths_luminance():
    image = coordinate_image(400, 300)
    rgb = bench.pan_clip(image, 5, (64, 48))
    assert rgb.shape == (5, 48, 64, 3) and rgb.dtype == np.float32
    windows = bench.pan_windows((400, 300), 5, (64, 48))
    for frame, (x, y, w, h) in zip(rgb, windows, strict=True):
        expected = cv2.resize(image[y : y + h, x : x + w], (64, 48), interpolation=cv2.INTER_AREA)
        np.testing.assert_allclose(frame, expected, atol=1e-6)
    assert rgb[0, 0, 0, 0] < 0.01 and rgb[-1, -1, -1, 0] > 0.99  # top-left corner first, bottom-right last
    item = RealItem("pan", "p", "x.png", "0" * 64, "eval", "photo", "a caption", "a wrong caption")
    clip = bench.make_clip(item, rgb)
    np.testing.assert_array_equal(clip.gray, luminance_gray(clip.rgb))
    np.testing.assert_allclose(gray_to_lightness(clip.gray), rgb_to_lab(clip.rgb)[..., 0], atol=0.05)


def write_movie(path: Path, frames: int, size=(64, 48)) -> list[tuple[int, int, int]]:
    """An MJPG movie whose frame i is one flat colour (lossy codec: flat colours survive it)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    assert writer.isOpened()
    colours = [(20 + 20 * i, 200 - 15 * i, 100) for i in range(frames)]  # RGB
    for c in colours:
        writer.write(np.full((size[1], size[0], 3), c[::-1], np.uint8))
    writer.release()
    return colours


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def small_catalog(tmp_path: Path) -> tuple:
    """A catalog of a movie and a photograph made here, in a data folder laid out as `real install` lays it."""
    root = tmp_path / "data" / "pkg"
    root.mkdir(parents=True)
    colours = write_movie(root / "movie.avi", 6, (80, 48))  # 5:3: centre-cropped to 4:3
    photo = np.round(coordinate_image(120, 90) * 255).astype(np.uint8)
    cv2.imwrite(str(root / "photo.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    doc = {"packages": {"pkg": {"kind": "deb", "version": "1", "licence": "CC0"}},
           "items": [
               {"id": "movie", "package": "pkg", "path": "movie.avi", "sha256": sha(root / "movie.avi"),
                "role": "eval", "kind": "video", "caption": "a red thing", "wrong_caption": "a blue thing"},
               {"id": "photo", "package": "pkg", "path": "photo.png", "sha256": sha(root / "photo.png"),
                "role": "eval", "kind": "photo", "caption": "a green thing", "wrong_caption": "a pink thing"},
               {"id": "trainphoto", "package": "pkg", "path": "photo.png", "sha256": "f" * 64,
                "role": "train", "kind": "photo", "caption": "a photo"}]}
    return parse_catalog(doc), tmp_path / "data", colours


def test_video_clip_reads_consecutive_frames_from_the_start_crops_and_resizes(tmp_path):
    catalog, data, colours = small_catalog(tmp_path)
    clip = bench.load_clip(catalog.item("movie"), frames=4, size=(32, 24), data_dir=data, catalog=catalog)
    assert clip.rgb.shape == (4, 24, 32, 3) and clip.gray.shape == (4, 24, 32)
    for t in range(4):
        assert np.abs(clip.rgb[t].mean((0, 1)) * 255 - colours[bench.VIDEO_START + t]).max() < 6
    np.testing.assert_array_equal(clip.gray, luminance_gray(clip.rgb))
    assert clip.caption == "a red thing" and clip.wrong_caption == "a blue thing" and clip.licence == "CC0"
    assert "frames 0–3" in clip.source
    with pytest.raises(InputError, match="only 6 readable frame"):
        bench.load_clip(catalog.item("movie"), frames=7, size=(32, 24), data_dir=data, catalog=catalog)


def test_photo_clip_is_the_pan_of_the_verified_file_and_training_items_are_refused(tmp_path):
    catalog, data, _ = small_catalog(tmp_path)
    clip = bench.load_clip(catalog.item("photo"), frames=3, size=(32, 24), data_dir=data, catalog=catalog)
    image = bench.read_photo(data / "pkg" / "photo.png")
    np.testing.assert_allclose(clip.rgb, bench.pan_clip(image, 3, (32, 24)), atol=1e-6)
    with pytest.raises(InputError, match="training item"):
        bench.load_clip(catalog.item("trainphoto"), frames=3, size=(32, 24), data_dir=data, catalog=catalog)
    (data / "pkg" / "photo.png").write_bytes(b"changed")
    with pytest.raises(InputError, match="sha256"):
        bench.load_clip(catalog.item("photo"), frames=3, size=(32, 24), data_dir=data, catalog=catalog)


# -- the catalog's hold-out --------------------------------------------------------------------------------


def test_evaluation_items_are_apart_from_training_items_and_have_a_wrong_caption():
    catalog = load_catalog()
    evals, train = catalog.select("eval"), catalog.select("train")
    assert {i.kind for i in evals} <= {"video", "photo"} and len(evals) >= 9
    assert not {i.id for i in evals} & {i.id for i in train}
    assert not {i.sha256 for i in evals} & {i.sha256 for i in train}
    assert not {(i.package, i.path) for i in evals} & {(i.package, i.path) for i in train}
    for item in evals:
        assert item.wrong_caption and item.wrong_caption != item.caption, item.id


def test_real_source_never_reads_an_evaluation_file(tmp_path, monkeypatch):
    """RealSource is built on the real catalog with every file it asks for replaced by a tiny image made
    here; what it asked for must hold no evaluation item."""
    from coolcolor.real import source

    photo, cutout = tmp_path / "photo.png", tmp_path / "cutout.png"
    cv2.imwrite(str(photo), np.full((24, 32, 3), 120, np.uint8))
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[4:12, 4:12] = (30, 30, 200, 255)
    cv2.imwrite(str(cutout), rgba)
    asked: list[RealItem] = []

    def fake_verified_path(item, data_dir=None, catalog=None):
        asked.append(item)
        return cutout if item.kind == "cutout" else photo

    monkeypatch.setattr(source, "verified_path", fake_verified_path)
    catalog = load_catalog()
    real = source.RealSource(resolution=16, seed=0, catalog=catalog)
    assert real.photos and asked
    evals = catalog.select("eval")
    assert not {(i.package, i.path) for i in asked} & {(i.package, i.path) for i in evals}
    assert {i.role for i in asked} == {"train"}


# -- the whole bench, tiny preset ---------------------------------------------------------------------------


def test_run_bench_end_to_end_with_the_tiny_preset(tiny_pipe, tmp_path):
    item = RealItem("synthetic", "p", "x", "0" * 64, "eval", "photo", "a red ball on green grass near an astronaut",
                    "a blue ball on purple grass")
    truth = bench.pan_clip(coordinate_image(80, 60), 3, (32, 24))
    clip = bench.make_clip(item, truth, "CC0", "made in the test")
    settings = bench.BenchSettings(steps=2, extra={"model": "preset:tiny", "frames": 3, "size": "32x24"})
    results = bench.run_bench(tiny_pipe, [clip], settings, pictures=tmp_path / "pics")
    row = results["clips"][0]
    for key in ("delta_e", "delta_e_gray", "ratio_to_gray", "chroma", "chroma_truth", "chroma_ratio", "flicker_ab",
                "flicker_ab_truth", "cdc_ab", "cdc_ab_truth", "delta_e_wrong", "truthful_beats_wrong", "keyframe"):
        assert key in row, key
    assert row["keyframe"] in range(3) and row["frames"] == 3 and row["size"] == [32, 24]
    assert row["unknown_words"] == tiny_pipe.unknown_words(item.caption) == ["astronaut"]
    assert row["unknown_words_wrong"] == []
    truth_lab = np.asarray(rgb_to_lab(clip.rgb), np.float64)
    gray_lab = truth_lab.copy()
    gray_lab[..., 1:] = 0
    assert row["delta_e_gray"] == pytest.approx(float(ciede2000(gray_lab, truth_lab).mean()), rel=1e-6)
    assert row["ratio_to_gray"] == pytest.approx(row["delta_e"] / row["delta_e_gray"])
    assert row["chroma_truth"] == pytest.approx(float(np.hypot(truth_lab[..., 1], truth_lab[..., 2]).mean()), rel=1e-5)
    assert results["summary"]["clips"] == 1 and results["summary"]["delta_e"] == pytest.approx(row["delta_e"])
    strip = cv2.imread(str(tmp_path / "pics" / "synthetic.png"))
    assert strip.shape == (24, 96, 3)  # gray | truth | result
    np.testing.assert_allclose(strip[:, 32:64, ::-1] / 255, clip.rgb[0], atol=1 / 255 + 1e-6)

    table = bench.markdown_table(results)
    assert "| synthetic |" in table and "**mean of 1**" in table and f"{row['delta_e_gray']:.2f}" in table
    assert "does not know (it ignores them): synthetic: astronaut." in table
    bench.write_json(results, tmp_path / "out" / "bench.json")
    saved = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert saved["settings"]["model"] == "preset:tiny" and saved["clips"][0]["id"] == "synthetic"
    assert saved["summary"]["below_gray"] in (0, 1) and saved["clips"][0]["delta_e_gray"] == pytest.approx(
        row["delta_e_gray"])


def test_the_same_seed_gives_the_same_numbers(tiny_pipe):
    item = RealItem("s", "p", "x", "0" * 64, "eval", "photo", "a red ball", "a blue ball")
    clip = bench.make_clip(item, textured(frames=2, h=24, w=32, shift=1))
    settings = bench.BenchSettings(steps=1, keyframe="none")
    a = bench.run_bench(tiny_pipe, [clip], settings)["clips"][0]
    b = bench.run_bench(tiny_pipe, [clip], settings)["clips"][0]
    assert a["delta_e"] == b["delta_e"] and a["delta_e_wrong"] == b["delta_e_wrong"] and a["keyframe"] is None


# -- the command line ------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["real", "bench", "--items", "vtest,nosuch"], r"--items: nosuch not an evaluation item; known: vtest"),
    (["real", "bench", "--size", "256"], r"size '256' is not of the form WIDTHxHEIGHT"),
    (["real", "bench", "--keyframe", "first"], r"--keyframe must be auto, none or a frame number"),
    (["real", "bench", "--frames", "0"], r"argument --frames: must be an integer in 1…64"),
])
def test_bench_refuses_bad_arguments_in_one_line(argv, message, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own refusals exit from inside the parser
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (1, 2) and len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith("coolcolor real bench: error:")
    import re

    assert re.search(message, err[0]), err[0]
    assert code == (2 if "argument" in message else 1)


def test_real_list_shows_the_evaluation_items_with_licence_and_caption(capsys):
    assert cli.main(["real", "list", "--role", "eval"]) == 0
    out = capsys.readouterr().out
    catalog = load_catalog()
    for item in catalog.select("eval"):
        assert f"| {item.id} | eval | {item.kind} | {catalog.licence(item)} | {item.caption} |" in out
    assert not any(f"| {i.id} |" in out for i in catalog.select("train"))
