"""``coolcolor data prepare``: the right images are kept and dropped with their reasons, a re-run decides
only what is left, the manifest trains, and bad input is one line."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from coolcolor import cli
from coolcolor.errors import InputError
from coolcolor.train import prepare as prep
from coolcolor.train.data import MANIFEST_NAME, FolderSource, blip_captioner

MIN_SIZE = 32


def colorful(seed: int = 0, h: int = 40, w: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 3] = (255, 0, 0)
    img[:, w // 3 : 2 * w // 3] = (0, 200, 0)
    img[:, 2 * w // 3 :] = (0, 0, 255)
    return (img * rng.uniform(0.8, 1.0)).astype(np.uint8)


def png(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb)
    assert ok
    return data.tobytes()


def put(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)


class FakeCaptioner:
    """Captions by image width (52 px wide: a caption naming no color); counts its calls and images;
    raises KeyboardInterrupt on call number ``interrupt_at`` (a run killed while captioning)."""

    def __init__(self, interrupt_at: int = 0) -> None:
        self.calls, self.images, self.interrupt_at = 0, 0, interrupt_at

    def caption_batch(self, images: list[np.ndarray]) -> list[str]:
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        self.images += len(images)
        assert all(i.dtype == np.float32 and 0 <= i.min() and i.max() <= 1 for i in images)
        return ["some stripes" if i.shape[1] == 52 else f"a blue picture {i.shape[1]} wide" for i in images]


def make_images(root: Path) -> None:
    put(root / "good.png", png(colorful(0)))
    put(root / "good.txt", "red, green and blue stripes")
    put(root / "uncaptioned.png", png(colorful(1)))  # the captioner names a color: kept
    put(root / "captioned_dull.png", png(colorful(2, w=52)))  # the captioner's caption names no color
    put(root / "nocolorword.png", png(colorful(3)))
    put(root / "nocolorword.txt", "some stripes")
    put(root / "gray.png", png(np.full((40, 48, 3), 128, np.uint8)))
    put(root / "gray.txt", "a gray wall")
    put(root / "onechannel.png", png(np.full((40, 48), 90, np.uint8)))
    put(root / "tiny.png", png(colorful(4, h=16, w=16)))
    put(root / "tiny.txt", "a red speck")
    put(root / "corrupt.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")
    put(root / "latin.png", png(colorful(5)))
    put(root / "latin.txt", "un ballon rouge caf\xe9".encode("latin-1"))
    put(root / "sub" / "copy.png", png(colorful(0)))  # the same bytes as good.png
    put(root / "sub" / "copy.txt", "a red copy")
    put(root / "notes.md", "not an image")
    shard = io.BytesIO()
    with tarfile.open(fileobj=shard, mode="w") as tar:
        for name, data in (("s/one.png", png(colorful(6))), ("s/one.txt", b"a yellow sun"),
                           ("s/two.png", png(np.full((40, 48, 3), 60, np.uint8))), ("s/two.txt", b"a red thing")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    put(root / "shards" / "part-0.tar", shard.getvalue())


EXPECTED = {
    "good.png": "",
    "uncaptioned.png": "",
    "captioned_dull.png": prep.NO_COLOR_WORD,
    "nocolorword.png": prep.NO_COLOR_WORD,
    "gray.png": prep.LOW_COLORFULNESS,
    "onechannel.png": prep.NOT_COLOR,
    "tiny.png": prep.TOO_SMALL,
    "corrupt.jpg": prep.UNREADABLE,
    "latin.png": prep.BAD_CAPTION_FILE,
    "sub/copy.png": "",  # decided kept; dropped from the manifest as a duplicate of good.png
    "shards/part-0.tar/s/one.png": "",
    "shards/part-0.tar/s/two.png": prep.LOW_COLORFULNESS,
}


def manifest(dataset: Path) -> list[dict]:
    return [json.loads(line) for line in (dataset / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def images(tmp_path) -> Path:
    root = tmp_path / "images"
    make_images(root)
    return root


def run(images: Path, out: Path, captioner=None, **kw) -> prep.Summary:
    kw.setdefault("workers", 1)
    return prep.prepare(images, out, captioner, min_size=MIN_SIZE, progress=False, **kw)


def test_keeps_and_drops_exactly_the_right_images_with_their_reasons(images, tmp_path):
    out = tmp_path / "dataset"
    captioner = FakeCaptioner()
    summary = run(images, out, captioner, caption_batch=4)
    decisions = prep.read_decisions(out / prep.DECISIONS_NAME)
    assert {k: r["reason"] for k, r in decisions.items()} == EXPECTED
    assert captioner.images == 2 and captioner.calls == 1  # only the two without a caption, in one batch
    entries = manifest(out)
    assert [(e["file"], e["caption"]) for e in entries] == [
        ("../images/good.png", "red, green and blue stripes"),
        (f"{prep.SHARDS_DIR}/shards/part-0.tar/s/one.png", "a yellow sun"),
        ("../images/uncaptioned.png", "a blue picture 48 wide"),
    ]
    good = entries[0]
    assert (good["width"], good["height"]) == (48, 40) and good["colorfulness"] > 15
    import hashlib

    assert good["sha256"] == hashlib.sha256((images / "good.png").read_bytes()).hexdigest()
    assert (out / entries[1]["file"]).read_bytes() == png(colorful(6))  # the tar member, extracted
    assert summary.kept == 3
    assert summary.dropped == {prep.NO_COLOR_WORD: 2, prep.LOW_COLORFULNESS: 2, prep.NOT_COLOR: 1,
                               prep.TOO_SMALL: 1, prep.UNREADABLE: 1, prep.BAD_CAPTION_FILE: 1, prep.DUPLICATE: 1}
    assert "kept 3 of 12 images" in summary.line()


def test_without_a_captioner_uncaptioned_images_are_dropped_and_workers_agree(images, tmp_path):
    run(images, tmp_path / "one", None, workers=1)
    run(images, tmp_path / "two", None, workers=2)
    assert (tmp_path / "one" / MANIFEST_NAME).read_text() == (tmp_path / "two" / MANIFEST_NAME).read_text()
    reasons = {k: r["reason"] for k, r in prep.read_decisions(tmp_path / "two" / prep.DECISIONS_NAME).items()}
    assert reasons["uncaptioned.png"] == reasons["captioned_dull.png"] == prep.NO_CAPTION
    assert [e["caption"] for e in manifest(tmp_path / "two")] == ["red, green and blue stripes", "a yellow sun"]


def test_an_interrupted_run_resumes_without_redoing_decided_files(images, tmp_path):
    for i in range(3):  # five images in all that need the captioner, one per batch
        put(images / f"more{i}.png", png(colorful(10 + i)))
    straight = tmp_path / "straight"
    run(images, straight, FakeCaptioner(), caption_batch=1)

    out = tmp_path / "dataset"
    with pytest.raises(KeyboardInterrupt):
        run(images, out, FakeCaptioner(interrupt_at=3), caption_batch=1)  # killed while captioning the third
    assert not (out / MANIFEST_NAME).exists()
    decided = prep.read_decisions(out / prep.DECISIONS_NAME)
    needs_captioner = {"captioned_dull.png", "more0.png", "more1.png", "more2.png", "uncaptioned.png"}
    assert set(decided) & needs_captioner == {"captioned_dull.png", "more0.png"}  # files go in path order
    # a kill in the middle of writing a decision leaves a torn line: it is cut off, that file decided again
    with (out / prep.DECISIONS_NAME).open("a", encoding="utf-8") as f:
        f.write('{"key": "uncaptioned.png", "stat": [1, ')
    again = FakeCaptioner()
    summary = run(images, out, again, caption_batch=1)
    assert again.images == 3  # 5 to caption, 2 captioned before the interruption
    assert (summary.decided_before, summary.decided_now) == (len(decided), 15 - len(decided))
    assert (out / MANIFEST_NAME).read_text() == (straight / MANIFEST_NAME).read_text()

    idle = FakeCaptioner()
    summary = run(images, out, idle, caption_batch=1)
    assert idle.calls == 0 and summary.decided_now == 0
    # a file changed since it was decided is decided again
    put(images / "more0.png", png(colorful(20, w=60)))
    changed = FakeCaptioner()
    run(images, out, changed, caption_batch=1)
    assert changed.images == 1
    assert "a blue picture 60 wide" in [e["caption"] for e in manifest(out)]
    (images / "more1.png").unlink()  # a file deleted since it was decided leaves the manifest
    summary = run(images, out, FakeCaptioner(), caption_batch=1)
    assert "../images/more1.png" not in [e["file"] for e in manifest(out)] and summary.kept == len(manifest(out))


def test_training_reads_the_manifest_without_decoding_its_images_again(images, tmp_path, monkeypatch):
    from coolcolor.train import data as data_module

    dataset = tmp_path / "dataset"
    run(images, dataset, FakeCaptioner())
    decoded: list[Path] = []
    real_read = data_module.read_rgb
    monkeypatch.setattr(data_module, "read_rgb", lambda p: decoded.append(p) or real_read(p))
    source = FolderSource(dataset, 16, 0)
    assert decoded == []  # colorfulness came from the manifest
    assert sorted(i.path for i in source.items) == sorted(
        [(images / "good.png").resolve(), (images / "uncaptioned.png").resolve(),
         (dataset / prep.SHARDS_DIR / "shards/part-0.tar/s/one.png").resolve()])
    assert [i.caption for i in source.items if i.path.name == "one.png"] == ["a yellow sun"]
    with pytest.raises(InputError, match="no usable images.*colorfulness"):  # training's own threshold still applies
        FolderSource(dataset, 16, 0, min_colorfulness=1e6)


def test_the_prepared_folder_trains(images, tmp_path, capsys):
    from coolcolor.model.pipeline import CoolColorPipeline
    from coolcolor.train.model import architecture, new_vae

    dataset = tmp_path / "dataset"
    assert cli.main(["data", "prepare", str(images), "-o", str(dataset), "--min-size", str(MIN_SIZE),
                     "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "kept 2 of 12 images" in out and f"2 {prep.NO_CAPTION}" in out  # no captioner on the command line
    vae = tmp_path / "vae"
    new_vae(architecture("tiny-test"), seed=0).save_pretrained(vae)
    run_dir = tmp_path / "run"
    sets = {"data": str(dataset), "architecture": "tiny-test", "vae_from": str(vae), "batch_size": 2,
            "resolution": 32, "threads": 1, "checkpoint_every": 10, "log_every": 1}
    argv = ["train", "--output", str(run_dir), "--steps", "2", "--no-progress"]
    for key, value in sets.items():
        argv += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    assert cli.main(argv) == 0
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2] and all(np.isfinite(e["loss"]) for e in log)
    pipe = CoolColorPipeline.from_pretrained(run_dir / "final")
    assert pipe.components.config.recipe["data"] == str(dataset)


def test_bad_input_is_one_line(images, tmp_path, capsys):
    with pytest.raises(InputError, match="does not exist"):
        run(tmp_path / "missing", tmp_path / "out")
    empty = tmp_path / "grays"
    put(empty / "a.png", png(np.full((40, 48, 3), 128, np.uint8)))
    with pytest.raises(InputError, match=r"nothing usable \(1× low colorfulness\)"):
        run(empty, tmp_path / "out-empty")
    run(images, tmp_path / "out")
    with pytest.raises(InputError, match="prepared with other settings.*min_colorfulness 15.0 → 30.0"):
        prep.prepare(images, tmp_path / "out", None, min_colorfulness=30, min_size=MIN_SIZE, workers=1, progress=False)
    not_blip = tmp_path / "clip"
    put(not_blip / "config.json", json.dumps({"model_type": "clip"}))
    with pytest.raises(InputError, match="is not a BLIP model.*model_type 'clip'"):
        blip_captioner(not_blip)
    capsys.readouterr()
    for argv, message in (
        (["data", "prepare", str(tmp_path / "missing"), "-o", str(tmp_path / "o")], "does not exist"),
        (["data", "prepare", str(images), "-o", str(tmp_path / "o"), "--captioner", str(not_blip)], "not a BLIP model"),
        (["data", "prepare", str(images), "-o", str(tmp_path / "o"), "--captioner", str(tmp_path / "none")],
         "captioning model folder .* does not exist"),
        (["data", "prepare", str(empty), "-o", str(tmp_path / "o2"), "--no-progress"], "nothing usable"),
    ):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert __import__("re").search(message, err), err
    assert not (tmp_path / "o" / MANIFEST_NAME).exists()


def tiny_blip_folder(folder: Path) -> Path:
    """A BLIP captioning folder made offline (random weights, a 14-word vocabulary) whose decoder is biased
    to say "red": what a real BLIP folder holds, small enough for a test."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import (BertTokenizerFast, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor,
                              BlipProcessor)

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "red", "blue", "ball", "sky", "picture",
             "of", "the"]
    inner = Tokenizer(models.WordPiece(vocab={w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    inner.normalizer = normalizers.BertNormalizer(lowercase=True)
    inner.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    inner.decoder = decoders.WordPiece()
    tokenizer = BertTokenizerFast(tokenizer_object=inner, bos_token="[DEC]", unk_token="[UNK]", sep_token="[SEP]",
                                  pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")
    BlipProcessor(BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer).save_pretrained(folder)
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(BlipConfig(
        text_config=dict(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, bos_token_id=5, pad_token_id=0, sep_token_id=3, eos_token_id=3),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16)))
    with torch.no_grad():
        bias = model.text_decoder.cls.predictions.bias
        bias.fill_(-20.0)
        bias[words.index("red")] = 20.0
    model.save_pretrained(folder)
    return folder


def test_a_local_blip_folder_captions_in_batches(images, tmp_path):
    blip = blip_captioner(tiny_blip_folder(tmp_path / "blip"))
    one = colorful(1).astype(np.float32) / 255
    batch = blip.caption_batch([one, colorful(2, w=52).astype(np.float32) / 255])
    assert len(batch) == 2 and batch[0] == blip(one) and batch[0].split()[0] == "red"
    summary = run(images, tmp_path / "dataset", blip, caption_batch=2)
    decisions = prep.read_decisions(tmp_path / "dataset" / prep.DECISIONS_NAME)
    assert decisions["uncaptioned.png"]["caption"] == batch[0] and decisions["captioned_dull.png"]["kept"]
    assert summary.kept == 4
