"""The gray-guided decoder (model.decoder_guide): starts as the plain decoder, reads the gray frame once
trained, travels with its checkpoint and its identity, trains without touching the encoder, and packages
with the shipped UNet with a reproduce list that is true."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from coolcolor.errors import CheckpointError, InputError
from coolcolor.model.checkpoint import load_components, save_components
from coolcolor.model.decoder_guide import DecoderGuide, decode, new_decoder_guide
from coolcolor.model.presets import tiny_components
from coolcolor.model.pipeline import CoolColorPipeline
from coolcolor.train.config import TrainConfig
from coolcolor.train.trainer import Trainer


def _trained_guide(components, seed: int = 1) -> DecoderGuide:
    """A guide whose zero convolutions have moved, as training moves them."""
    guide = new_decoder_guide(components.vae, seed)
    with torch.no_grad():
        for p in guide.zero_convs.parameters():
            p.normal_(std=0.1, generator=torch.Generator().manual_seed(seed))
    return guide


def test_a_new_guide_decodes_exactly_like_the_plain_decoder():
    vae = tiny_components(0).vae
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    gray = torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(decode(vae, z, new_decoder_guide(vae, 3), gray), vae.decode(z).sample)


def test_a_trained_guide_reads_the_gray_frame():
    components = tiny_components(0)
    guide = _trained_guide(components)
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    dark, light = torch.zeros(1, 64, 64), torch.ones(1, 64, 64)
    with torch.no_grad():
        plain = components.vae.decode(z).sample
        on_dark, on_light = decode(components.vae, z, guide, dark), decode(components.vae, z, guide, light)
    assert on_dark.shape == plain.shape
    assert (on_dark - plain).abs().max() > 1e-2 and (on_dark - on_light).abs().max() > 1e-2
    with pytest.raises(ValueError, match="gray frames"):
        decode(components.vae, z, guide)
    components.decoder_guide = guide
    with pytest.raises(InputError, match="guided by the gray frames"):
        CoolColorPipeline(components).decode(z)


def test_a_checkpoint_keeps_its_guide_and_the_guide_is_part_of_its_identity(tmp_path):
    gray = np.random.default_rng(0).random((2, 48, 64)).astype(np.float32)
    run = dict(prompt="a red ball", num_inference_steps=3, seed=1)
    plain = tiny_components(0)
    guided = tiny_components(0)
    guided.decoder_guide = _trained_guide(guided)
    assert guided.weights_hash() != plain.weights_hash()
    before = CoolColorPipeline(guided)(gray, **run).ab
    assert np.abs(before - CoolColorPipeline(plain)(gray, **run).ab).max() > 0.1  # the guide changes the colors

    save_components(guided, tmp_path / "model")
    assert (tmp_path / "model" / "decoder_guide" / "config.json").is_file()
    loaded = load_components(tmp_path / "model")
    assert isinstance(loaded.decoder_guide, DecoderGuide) and loaded.weights_hash() == guided.weights_hash()
    np.testing.assert_array_equal(CoolColorPipeline(loaded)(gray, **run).ab, before)
    assert load_components(tmp_path / "model", dtype=torch.bfloat16).weights_hash() == guided.weights_hash()

    save_components(plain, tmp_path / "plain")
    assert load_components(tmp_path / "plain").decoder_guide is None  # a folder without one decodes as before


def test_a_guide_that_does_not_fit_the_vae_is_refused_by_name(tmp_path):
    components = tiny_components(0)
    save_components(components, tmp_path / "model")
    DecoderGuide(stage_channels=(8, 8, 8, 8)).save_pretrained(tmp_path / "model" / "decoder_guide")
    with pytest.raises(CheckpointError, match=r"decoder_guide stage_channels \[8, 8, 8, 8\] do not fit"):
        load_components(tmp_path / "model")


@pytest.mark.parametrize("settings", [{"stage": "unet"}, {"stage": "vae", "vae_train": "all"}])
def test_a_guide_trains_only_with_a_decoder_fine_tune(tmp_path, settings):
    with pytest.raises(InputError, match="decoder_guide trains with the decoder of a trained VAE"):
        TrainConfig(output=str(tmp_path), decoder_guide=True, vae_from="v", **settings).validate()


def test_a_guide_run_keeps_the_encoder_and_ships_with_a_packaged_unet(packaged_default):
    """The shipped default's gesture: train a guide (and its decoder) from the packaged model, then package
    it with that model's UNet. The encoder, so the UNet's latents, stay bit for bit; the reproduce list starts
    the guide run from the VAE run the list's earlier command trains, and rerunning it gives the same weights."""
    from coolcolor.train.package import package

    before = load_components(packaged_default)

    def guide_run(output: str, start: str, command: str = "") -> Path:
        Trainer(TrainConfig(output=output, stage="vae", vae_train="decoder", decoder_guide=True, vae_from=start,
                            steps=2, batch_size=4, lr=1e-2, ab_weight=1.0, seed=4, threads=1),
                command=command).run(progress=False)
        return Path(output)

    run = guide_run("guide-run", "default", "coolcolor train --config guide.json --set vae_from=default --no-progress")
    guide = DecoderGuide.from_pretrained(run / "final" / "decoder_guide")
    assert any(p.abs().max() > 0 for p in guide.zero_convs.parameters())  # it learnt to read the gray frame

    after = load_components(package(Path("default"), run, Path("default")))
    assert after.decoder_guide is not None
    old, new = before.vae.state_dict(), after.vae.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old if k.startswith(("encoder.", "quant_conv.")))
    assert all(torch.equal(a, b) for a, b in zip(before.unet.state_dict().values(), after.unet.state_dict().values(), strict=True))
    provenance = after.config.provenance
    assert provenance["reproduce"] == [
        "coolcolor train --config vae.json --output vae-run",
        "coolcolor train --config guide.json --set vae_from=vae-run --no-progress",
        "coolcolor train --config unet.json --output base-run"]
    assert set(provenance["training_seconds"]) == {"vae:vae-run", "vae:guide-run", "unet"}
    assert provenance["training_seconds"]["unet"] == before.config.provenance["training_seconds"]["unet"]
    assert [c["output"] for c in after.config.recipe["vae"]["from"]] == ["vae-run"]
    assert provenance["weights_hash"] == after.weights_hash() != before.weights_hash()
    with pytest.raises(CheckpointError, match="already holds guide-run's VAE"):
        package(Path("default"), run, Path("twice"))  # its history would count the guide run twice

    # a new UNet trained on the guided VAE keeps the guide with its decoder, so its own checkpoints decode right
    Trainer(TrainConfig(output="unet-on-guided", architecture="tiny-test", vae_from="default", steps=1, batch_size=4,
                        threads=1)).run(progress=False)
    carried = load_components(Path("unet-on-guided") / "final").decoder_guide
    assert carried is not None and all(
        torch.equal(a, b) for a, b in zip(carried.state_dict().values(), guide.state_dict().values(), strict=True))

    # and the list is true: the guide command, started where the list says, gives the packaged weights
    again = load_components(package(Path("base-run"), guide_run("guide-again", "vae-run"), Path("again")))
    assert again.weights_hash() == after.weights_hash()
