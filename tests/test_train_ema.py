"""The EMA of the trained weights (train.ema): diffusers' warm-up decay, checkpoint state, the final copy."""

from __future__ import annotations

import pytest
import torch

from coolcolor.errors import CheckpointError
from coolcolor.train.ema import WeightEMA


def _module() -> torch.nn.Module:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    module[1].requires_grad_(False)  # frozen: not averaged (a LoRA run's base weights)
    return module


def test_only_the_trained_parameters_are_averaged_with_the_warm_up_decay():
    module = _module()
    ema = WeightEMA(module, max_decay=0.5)
    assert set(ema.averages) == {"0.weight", "0.bias"}
    assert [ema.decay_at(k) for k in (0, 8, 100)] == [1 / 10, 9 / 18, 0.5]  # (1+k)/(10+k), capped at 0.5
    start = module[0].weight.detach().clone()
    with torch.no_grad():
        module[0].weight.add_(1.0)
    ema.update(0)
    assert torch.allclose(ema.averages["0.weight"], 0.1 * start + 0.9 * (start + 1), atol=1e-7)
    with torch.no_grad():
        module[0].weight.add_(1.0)
    ema.update(100)
    assert torch.allclose(ema.averages["0.weight"], 0.5 * (0.1 * start + 0.9 * (start + 1)) + 0.5 * (start + 2),
                          atol=1e-6)


def test_state_round_trips_as_a_plain_dict_and_a_foreign_state_is_one_line():
    module = _module()
    ema = WeightEMA(module, max_decay=0.9)
    with torch.no_grad():
        module[0].weight.mul_(3.0)
    ema.update(5)
    state = ema.state_dict()
    assert type(state) is dict and all(t.device.type == "cpu" for t in state.values())
    ema.averages["0.weight"].zero_()
    assert not torch.equal(state["0.weight"], ema.averages["0.weight"])  # a copy, not the live tensor
    ema.load_state_dict(state, "ckpt")
    assert torch.equal(ema.averages["0.weight"], state["0.weight"])
    with pytest.raises(CheckpointError, match=r"^ckpt: the checkpoint holds no EMA of this UNet's weights"):
        ema.load_state_dict(None, "ckpt")
    with pytest.raises(CheckpointError, match="no EMA"):
        ema.load_state_dict({"0.weight": state["0.weight"]}, "ckpt")


def test_copy_to_puts_the_averages_into_the_module_and_leaves_frozen_weights():
    module = _module()
    ema = WeightEMA(module, max_decay=0.9)
    frozen = module[1].weight.detach().clone()
    with torch.no_grad():
        module[0].weight.add_(2.0)
    ema.update(0)
    ema.copy_to()
    assert torch.equal(module[0].weight, ema.averages["0.weight"])
    assert torch.equal(module[1].weight, frozen)

