"""The trainer: losses fall, checkpoints resume identically, bad resumes are refused, recipes are recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from coolcolor.errors import CheckpointError, InputError
from coolcolor.model.checkpoint import encode_gray_latents, load_components
from coolcolor.model.pipeline import CoolColorPipeline
from coolcolor.train.config import TrainConfig
from coolcolor.train.model import architecture, new_vae
from coolcolor.train.trainer import Trainer

BATCH = 4


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vae") / "vae"
    new_vae(architecture("tiny-test"), seed=0).save_pretrained(folder)
    return folder


def unet_config(out: Path, vae_dir: Path, **kw) -> TrainConfig:
    values = dict(output=str(out), stage="unet", architecture="tiny-test", vae_from=str(vae_dir), steps=3,
                  batch_size=BATCH, lr=1e-3, lambda_schedule="constant", lambda_max=0.1, ef_fraction=0.5,
                  checkpoint_every=2, log_every=1, seed=5, threads=1)
    values.update(kw)
    return TrainConfig(**values)


def test_loss_decreases_on_a_fixed_batch(tmp_path, vae_dir):
    trainer = Trainer(unet_config(tmp_path / "run", vae_dir, lr=3e-3))
    trainer._build()
    batch = trainer._source().batch(0, 8)
    state = trainer.generator.get_state()

    def loss_now() -> float:
        trainer.generator.set_state(state)
        return float(trainer.losses(batch, 0)["loss"].detach())

    before = loss_now()
    for _ in range(12):
        trainer.train_step(batch)
    assert loss_now() < 0.8 * before


def test_both_loss_terms_are_present_and_lambda_follows_the_schedule(tmp_path, vae_dir):
    trainer = Trainer(unet_config(tmp_path / "run", vae_dir, lambda_schedule="progressive", lambda_max=1e-3, steps=5))
    trainer._build()
    batch = trainer._source().batch(0, BATCH)
    first = trainer.train_step(batch)
    assert first["lambda"] == 0.0 and first["ef"] == 0.0  # λ = 0 at step 0: no warped pass
    second = trainer.train_step(batch)
    assert second["lambda"] == pytest.approx(2.5e-4) and second["ef"] > 0
    assert second["loss"] == pytest.approx(second["recon"] + second["lambda"] * second["ef"], rel=1e-5)


def test_gray_latents_follow_the_pipeline_convention(vae_dir):
    from coolcolor.model.presets import tiny_components

    components = tiny_components(0)
    pipe = CoolColorPipeline(components)
    gray = torch.rand(2, 32, 32)
    assert torch.allclose(encode_gray_latents(components.vae, gray), pipe.encode_gray(gray), atol=1e-6)


def test_resume_continues_the_same_loss_curve(tmp_path, vae_dir):
    straight = Trainer(unet_config(tmp_path / "a", vae_dir, steps=3, checkpoint_every=10))
    straight.run(progress=False)
    expected = [h["loss"] for h in straight.history]

    first = Trainer(unet_config(tmp_path / "b", vae_dir, steps=2, checkpoint_every=10))
    first.run(progress=False)  # stops at step 2 with a checkpoint, as a killed run's last one
    resumed = Trainer(unet_config(tmp_path / "b", vae_dir, steps=3, checkpoint_every=10))
    resumed.run(progress=False)
    assert resumed.history[0]["step"] == 3
    assert resumed.history[0]["loss"] == pytest.approx(expected[2], rel=1e-5)
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3]


def test_checkpoints_are_complete_pruned_and_temp_folders_ignored(tmp_path, vae_dir):
    out = tmp_path / "run"
    trainer = Trainer(unet_config(out, vae_dir, steps=5, checkpoint_every=1, keep_checkpoints=2))
    (out / "checkpoints" / ".tmp-step-0000009-1").mkdir(parents=True)  # debris of a killed save
    trainer.run(progress=False)
    assert [p.name for p in trainer.checkpoints()] == ["step-0000004", "step-0000005"]
    final = load_components(out / "final")
    recipe = final.config.recipe
    assert recipe["state"] == "trained" and recipe["steps"] == 5 and recipe["seed"] == 5
    assert recipe["lambda"]["schedule"] == "constant" and recipe["command"]
    assert not (out / "final" / "trainer_state.pt").exists()


def test_resume_refuses_another_architecture(tmp_path, vae_dir):
    out = tmp_path / "run"
    Trainer(unet_config(out, vae_dir, steps=1)).run(progress=False)
    other = Trainer(unet_config(out, vae_dir, steps=2, architecture="coolcolor-tiny"))
    with pytest.raises(CheckpointError, match="another architecture"):
        other.run(progress=False)
    assert (out / "checkpoints" / "step-0000001").is_dir()  # nothing trained is lost


def test_resume_refuses_changed_training_settings(tmp_path, vae_dir):
    out = tmp_path / "run"
    Trainer(unet_config(out, vae_dir, steps=1)).run(progress=False)
    with pytest.raises(InputError, match="changed setting.*lr"):
        Trainer(unet_config(out, vae_dir, steps=2, lr=5e-4)).run(progress=False)


def test_vae_stage_trains_and_sets_the_scaling_factor(tmp_path):
    out = tmp_path / "vae-run"
    config = TrainConfig(output=str(out), stage="vae", architecture="tiny-test", steps=2, batch_size=4, lr=1e-3,
                         checkpoint_every=1, threads=1)
    final = Trainer(config).run(progress=False)
    cfg = json.loads((final / "vae" / "config.json").read_text())
    assert cfg["scaling_factor"] != 1.0 and cfg["scaling_factor"] > 0
    assert (out / "checkpoints" / "step-0000002" / "trainer_state.pt").is_file()


def test_vae_chroma_loss_is_cielab_ab_error_and_joins_the_total(tmp_path):
    from skimage.color import rgb2lab

    from coolcolor.train.trainer import _ab

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3)) * 2 - 1
    expected = rgb2lab(((x + 1) / 2).permute(0, 2, 3, 1).double().numpy())[..., 1:]
    assert torch.allclose(_ab(x).double(), torch.from_numpy(expected), atol=1e-3)

    def losses(ab_weight: float) -> dict:
        config = TrainConfig(output=str(tmp_path / f"run-{ab_weight}"), stage="vae", architecture="tiny-test",
                             batch_size=4, ab_weight=ab_weight, threads=1)
        trainer = Trainer(config)
        trainer._build()
        return trainer.losses(trainer._source().batch(0, 4), 0)

    plain, chroma = losses(0.0), losses(2.0)
    assert "ab" not in plain
    assert float(chroma["ab"].detach()) > 0  # an untrained decoder's colors are wrong
    # Same seed, same batch, same draw: only the chroma term differs.
    assert torch.allclose(chroma["loss"], plain["loss"] + 2.0 * chroma["ab"])


def test_min_snr_weights_count_nearly_clean_timesteps_less():
    from coolcolor.train.trainer import _min_snr_mse

    eps, noise = torch.zeros(2, 4, 2, 2), torch.ones(2, 4, 2, 2)  # per-sample MSE = 1 for both
    alpha_bar = torch.tensor([0.5, 0.99])  # SNR 1 (kept at weight 1) and SNR 99 (weight 5/99 for γ = 5)
    assert torch.isclose(_min_snr_mse(eps, noise, alpha_bar, 5.0), torch.tensor((1 + 5 / 99) / 2))
    assert torch.isclose(_min_snr_mse(eps, noise, alpha_bar, 1000.0), torch.tensor(1.0))


def test_min_snr_loss_is_used_by_the_unet_stage(tmp_path, vae_dir):
    def recon(**kw) -> float:
        trainer = Trainer(unet_config(tmp_path / f"run-{len(kw)}", vae_dir, lambda_schedule="zero", **kw))
        trainer._build()
        return float(trainer.losses(trainer._source().batch(0, 8), 0)["recon"].detach())

    plain, weighted = recon(), recon(snr_gamma=1.0)
    assert weighted < plain  # same batch, noise and timesteps; some of the 8 timesteps have SNR > 1


def test_unet_stage_without_vae_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="vae_from"):
        Trainer(TrainConfig(output=str(tmp_path / "x"), stage="unet", architecture="tiny-test")).run(progress=False)
    with pytest.raises(CheckpointError, match="no finished VAE"):
        Trainer(TrainConfig(output=str(tmp_path / "y"), stage="unet", architecture="tiny-test",
                            vae_from=str(tmp_path))).run(progress=False)


def test_two_stages_then_package_records_both_commands(tmp_path):
    from coolcolor.model.checkpoint import weights_hash
    from coolcolor.train.package import package

    vae_run = tmp_path / "vae-run"
    Trainer(TrainConfig(output=str(vae_run), stage="vae", architecture="tiny-test", steps=1, batch_size=4, threads=1),
            command="coolcolor train --config vae.json").run(progress=False)
    run = tmp_path / "unet-run"
    Trainer(TrainConfig(output=str(run), architecture="tiny-test", vae_from=str(vae_run), steps=1, batch_size=4,
                        seed=9, threads=1), command="coolcolor train --config unet.json").run(progress=False)
    dest = package(run, vae_run, tmp_path / "shipped")
    components = load_components(dest)
    recipe = components.config.recipe
    assert recipe["command"] == "coolcolor train --config unet.json" and recipe["seed"] == 9
    assert recipe["vae"]["command"] == "coolcolor train --config vae.json"
    assert components.config.provenance["reproduce"] == [recipe["vae"]["command"], recipe["command"]]
    assert components.config.provenance["weights_hash"] == weights_hash(components.unet, components.vae,
                                                                         components.text_encoder)
    assert components.config.provenance["weights_hash"] == CoolColorPipeline.from_pretrained(dest).model_hash
    assert all(s >= 0 for s in components.config.provenance["training_seconds"].values())
    assert components.vae.config.scaling_factor != 1.0  # the VAE stage's scaling factor travelled along


def test_decoder_fine_tune_keeps_the_encoder_and_ships_with_the_unet(tmp_path):
    """A decoder-only run changes what latents decode to, never the latents: the UNet trained on the first VAE
    still fits, so packaging accepts the pair, and refuses a VAE with another encoder."""
    from diffusers import AutoencoderKL

    from coolcolor.train.package import package

    def vae_stage(out: str, **kw) -> Path:
        values = dict(output=str(tmp_path / out), stage="vae", architecture="tiny-test", steps=2, batch_size=4,
                      lr=1e-2, threads=1)
        Trainer(TrainConfig(**{**values, **kw}), command=f"coolcolor train {out}").run(progress=False)
        return tmp_path / out

    first = vae_stage("vae-run")
    decoder = vae_stage("decoder-run", vae_from=str(first), vae_train="decoder", ab_weight=1.0)
    run = tmp_path / "unet-run"
    Trainer(TrainConfig(output=str(run), architecture="tiny-test", vae_from=str(first), steps=1, batch_size=4,
                        threads=1), command="coolcolor train unet").run(progress=False)

    a = AutoencoderKL.from_pretrained(first / "final" / "vae").state_dict()
    b = AutoencoderKL.from_pretrained(decoder / "final" / "vae").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith(("encoder.", "quant_conv.")))
    assert not all(torch.equal(a[k], b[k]) for k in a if k.startswith("decoder."))

    components = load_components(package(run, decoder, tmp_path / "shipped"))
    shipped = components.vae.state_dict()
    assert all(torch.equal(shipped[k], b[k]) for k in b)
    assert components.config.provenance["reproduce"] == [
        "coolcolor train vae-run", "coolcolor train decoder-run", "coolcolor train unet"]
    assert components.config.provenance["weights_hash"] == components.weights_hash()

    stranger = vae_stage("other-vae", seed=7)
    with pytest.raises(CheckpointError, match="encoder is not the one the UNet was trained on"):
        package(run, stranger, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_the_same_command_trains_bit_identical_models(tmp_path):
    """coolcolor.json's reproduce commands are only true if training is a function of the config alone."""
    from coolcolor.model.checkpoint import weights_hash

    def train_both(folder: Path, global_seed: int) -> tuple[str, float, str]:
        torch.manual_seed(global_seed)  # whatever the process did before must not matter
        vae_run = folder / "vae"
        Trainer(TrainConfig(output=str(vae_run), stage="vae", architecture="tiny-test", steps=2, batch_size=4,
                            seed=3, threads=1)).run(progress=False)
        Trainer(TrainConfig(output=str(folder / "unet"), architecture="tiny-test", vae_from=str(vae_run), steps=2,
                            batch_size=4, seed=4, threads=1, lambda_schedule="constant", lambda_max=0.1,
                            ef_fraction=0.5)).run(progress=False)
        model = load_components(folder / "unet" / "final")
        return (weights_hash(model.vae), model.vae.config.scaling_factor,
                weights_hash(model.unet, model.text_encoder))

    first, second = train_both(tmp_path / "a", 0), train_both(tmp_path / "b", 12345)
    assert first == second


def test_a_packaged_model_ships_its_vae_and_vae_history_with_a_new_unet(tmp_path):
    """A new UNet trained on the shipped model's VAE (``vae_from`` = the packaged folder) packages with that
    VAE and the VAE stages' commands and seconds the old model recorded; its own UNet command replaces the old."""
    from coolcolor.train.package import package

    vae_run = tmp_path / "vae-run"
    Trainer(TrainConfig(output=str(vae_run), stage="vae", architecture="tiny-test", steps=1, batch_size=4, threads=1),
            command="coolcolor train --config vae.json").run(progress=False)
    first = tmp_path / "unet-run"
    Trainer(TrainConfig(output=str(first), architecture="tiny-test", vae_from=str(vae_run), steps=1, batch_size=4,
                        threads=1), command="coolcolor train --config unet.json").run(progress=False)
    old = package(first, vae_run, tmp_path / "old")

    second = tmp_path / "unet-run-2"
    Trainer(TrainConfig(output=str(second), architecture="tiny-test", vae_from=str(old), steps=1, batch_size=4,
                        seed=5, threads=1), command="coolcolor train --config wide.json").run(progress=False)
    new = load_components(package(second, old, tmp_path / "new"))
    before = load_components(old)
    assert new.config.recipe["command"] == "coolcolor train --config wide.json"
    assert new.config.recipe["vae"] == before.config.recipe["vae"]
    assert new.config.provenance["reproduce"] == ["coolcolor train --config vae.json", "coolcolor train --config wide.json"]
    assert set(new.config.provenance["training_seconds"]) == {"vae:vae-run", "unet"}
    shipped, kept = new.vae.state_dict(), before.vae.state_dict()
    assert all(torch.equal(shipped[k], kept[k]) for k in kept)
    assert new.config.provenance["weights_hash"] == new.weights_hash() != before.weights_hash()


def test_a_fine_tune_packaged_over_its_base_reproduces_from_the_base_run(packaged_default):
    """Fine-tuning the shipped default (``init_from`` = its folder) and packaging the result into that same
    folder must leave a reproduce list that starts the fine-tune from the base run the list's previous command
    trains, not from the folder (which now holds the fine-tune); the base's UNet seconds travel along."""
    from coolcolor.train.package import package

    before = load_components(packaged_default)
    Trainer(TrainConfig(output="ft-run", architecture="tiny-test", init_from="default", steps=2, batch_size=4,
                        lr=1e-2, seed=6, threads=1), command="coolcolor train --config ft.json").run(progress=False)
    after = load_components(package(Path("ft-run"), Path("default"), Path("default")))
    assert after.config.provenance["reproduce"] == [
        "coolcolor train --config vae.json --output vae-run", "coolcolor train --config unet.json --output base-run",
        "coolcolor train --config ft.json --set init_from=base-run/final"]
    seconds = after.config.provenance["training_seconds"]
    assert set(seconds) == {"vae:vae-run", "unet:base", "unet"}
    assert seconds["unet:base"] == before.config.provenance["training_seconds"]["unet"]
    assert after.weights_hash() != before.weights_hash()

    # and the list is true: its last command, run from the base run, gives the packaged weights
    Trainer(TrainConfig(output="ft-again", architecture="tiny-test", init_from="base-run/final", steps=2,
                        batch_size=4, lr=1e-2, seed=6, threads=1)).run(progress=False)
    again = load_components(package(Path("ft-again"), Path("vae-run"), Path("again")))
    assert again.weights_hash() == after.weights_hash()

    # a fine-tune of the fine-tune counts both bases' UNet seconds before its own
    Trainer(TrainConfig(output="ft2-run", architecture="tiny-test", init_from="default", steps=1, batch_size=4,
                        seed=7, threads=1), command="coolcolor train --config ft2.json").run(progress=False)
    twice = load_components(package(Path("ft2-run"), Path("default"), Path("twice"))).config.provenance
    assert twice["training_seconds"]["unet:base"] == pytest.approx(seconds["unet"] + seconds["unet:base"], abs=0.11)


def test_a_fine_tune_whose_base_records_no_output_folder_is_named():
    """The reproduce list cannot point a fine-tune at its base without the base's output folder: say so."""
    from coolcolor.train.package import _fine_tune_command

    recipe = {"command": "coolcolor train --config ft.json", "init_from": "default",
              "init_recipe": {"command": "coolcolor train --config unet.json", "train_config": {}}}
    with pytest.raises(CheckpointError, match="base model records no output folder.*--config unet.json"):
        _fine_tune_command(recipe)
    recipe["init_recipe"]["train_config"]["output"] = "runs/base"
    assert _fine_tune_command(recipe) == "coolcolor train --config ft.json --set init_from=runs/base/final"
    assert _fine_tune_command({"command": "coolcolor train --config unet.json"}) == "coolcolor train --config unet.json"


def test_a_preset_trains_from_its_random_weights(tmp_path):
    """init_from = preset:NAME: the preset's shapes, random weights (what bench_train_step measures)."""
    from coolcolor.model.presets import tiny_components

    config = TrainConfig(output=str(tmp_path / "run"), init_from="preset:tiny", resolution=32, steps=2, batch_size=2,
                         checkpoint_every=10, log_every=1, threads=1, lambda_schedule="constant")
    final = Trainer(config).run(progress=False)
    trained = load_components(final)
    assert trained.weights_hash() != tiny_components(0).weights_hash()  # it trained
    assert trained.config.recipe["init_recipe"]["preset"] == "tiny"
    with pytest.raises(CheckpointError, match="unknown model preset 'preset:huge'"):
        Trainer(TrainConfig(output=str(tmp_path / "other"), init_from="preset:huge"))._build()


def test_ema_of_the_unet_weights_is_the_final_model_and_resumes_exactly(tmp_path, vae_dir):
    from safetensors.torch import load_file

    trainer = Trainer(unet_config(tmp_path / "formula", vae_dir, ema_decay=0.9))
    trainer._build()
    before = {n: p.detach().clone() for n, p in trainer.components.unet.named_parameters()}
    trainer.train_step(trainer._source().batch(0, BATCH))
    after = dict(trainer.components.unet.named_parameters())
    decay = min(0.9, 1 / 10)  # the first update: diffusers' warm-up (1 + 0) / (10 + 0)
    for name in ("conv_in.weight", "mid_block.attentions.0.proj_in.weight"):
        expected = decay * before[name] + (1 - decay) * after[name].detach()
        assert torch.allclose(trainer.ema.averages[name], expected, atol=1e-7)

    def final_unet(run: Path) -> dict[str, torch.Tensor]:
        return load_file(run / "final" / "unet" / "diffusion_pytorch_model.safetensors")

    straight = Trainer(unet_config(tmp_path / "a", vae_dir, steps=3, checkpoint_every=10, ema_decay=0.9))
    straight.run(progress=False)
    Trainer(unet_config(tmp_path / "b", vae_dir, steps=2, checkpoint_every=10, ema_decay=0.9)).run(progress=False)
    Trainer(unet_config(tmp_path / "b", vae_dir, steps=3, checkpoint_every=10, ema_decay=0.9)).run(progress=False)
    a, b = final_unet(tmp_path / "a"), final_unet(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)  # the resumed run's average is the straight run's
    raw = load_file(tmp_path / "a" / "checkpoints" / "step-0000003" / "unet" / "diffusion_pytorch_model.safetensors")
    assert not torch.equal(raw["conv_in.weight"], a["conv_in.weight"])  # the final model is the average, not θ
    assert torch.equal(a["conv_in.weight"], straight.ema.averages["conv_in.weight"])
    assert CoolColorPipeline.from_pretrained(tmp_path / "a" / "final").config.recipe["ema_decay"] == 0.9
    with pytest.raises(InputError, match="ema_decay must be in"):
        unet_config(tmp_path / "c", vae_dir, ema_decay=1.0).validate()


def _train_cli(config: TrainConfig, tmp_path: Path, *flags: str) -> int:
    from coolcolor.cli import main as cli_main

    path = tmp_path / f"{Path(config.output).name}.json"
    path.write_text(json.dumps(config.to_dict()))
    return cli_main(["train", "--config", str(path), "--no-progress", *flags])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_last_checkpoint(tmp_path, vae_dir, monkeypatch,
                                                                                   capsys):
    import errno
    import os

    out = tmp_path / "run"
    assert _train_cli(unet_config(out, vae_dir, steps=1), tmp_path) == 0
    last = out / "checkpoints" / "step-0000001"
    before = {p.name: p.read_bytes() for p in last.rglob("*") if p.is_file()}
    capsys.readouterr()

    def full_disk(obj, f, *args, **kwargs):  # the trainer state is the last file of a checkpoint
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))

    monkeypatch.setattr(torch, "save", full_disk)
    assert _train_cli(unet_config(out, vae_dir, steps=1), tmp_path, "--steps", "2") == 1
    err = _one_line(capsys)
    assert "cannot write the checkpoint" in err and "No space left on device" in err, err
    assert f"the last checkpoint, {last}, is intact" in err
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-0000001"]  # nothing half-written
    assert {p.name: p.read_bytes() for p in last.rglob("*") if p.is_file()} == before
    assert load_components(last).config.recipe["steps"] == 1
    monkeypatch.undo()  # space again: the run resumes from the intact checkpoint
    resumed = Trainer(unet_config(out, vae_dir, steps=2))
    resumed.run(progress=False)
    assert [h["step"] for h in resumed.history] == [2]


def test_init_from_a_stable_diffusion_folder_is_named_before_the_run_folder_exists(tmp_path, sd15_folder, capsys):
    out = tmp_path / "run"
    config = TrainConfig(output=str(out), init_from=str(sd15_folder), steps=1, batch_size=2, threads=1)
    assert _train_cli(config, tmp_path) == 1
    err = _one_line(capsys)
    assert (f"init_from {sd15_folder} is a Stable Diffusion 1.5 folder, not a CoolColor checkpoint; convert it "
            f"first with `coolcolor init --from-sd15 {sd15_folder} OUT`") in err, err
    unet_json = sd15_folder / "unet" / "config.json"
    unet_json.write_text(json.dumps({**json.loads(unet_json.read_text()), "in_channels": 9}))
    assert _train_cli(config, tmp_path) == 1
    err = _one_line(capsys)
    assert "is neither a CoolColor checkpoint nor a Stable Diffusion 1.5 folder" in err and "SD-1.5 has 4/4" in err
    assert not out.exists()
