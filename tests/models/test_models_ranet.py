"""RANet: the data flow of the module docstring (eq. 2 and 3), local encoder weights, batch-norm modes, config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from npcseg.models import build_model, count_parameters, tiny_config
from npcseg.models.attention import ChannelRecurrentAttention, RegionRecurrentAttention
from npcseg.models.ranet import RANet, RANetConfig
from npcseg.models.resnet import ResNetEncoder

TINY = {
    "encoder_depth": 18,
    "encoder_width": 8,
    "decoder_widths": [8, 8, 16, 16, 24],
    "channel_hidden_size": 8,
    "region_size": 2,
    "region_hidden_size": 8,
    "region_channels": 1,
    "context_width": 8,
    "fusion_width": 8,
}


def _ranet(**overrides: object) -> RANet:
    torch.manual_seed(0)
    model = build_model("ranet", {**TINY, **overrides})
    assert isinstance(model, RANet)
    return model


def _capture(module: torch.nn.Module, store: dict[str, Any], name: str) -> None:
    def hook(module: torch.nn.Module, inputs: tuple[object, ...], output: object) -> None:
        store[name] = (inputs[0], output)

    module.register_forward_hook(hook)


def test_data_flow_follows_equations_2_and_3() -> None:
    """cRAM sees the encoder levels, rRAM the decoder levels, and the context is GAP of the deepest cRAM map."""
    model = _ranet().eval()
    store: dict[str, Any] = {}
    for name in ("encoder", "cram", "rram", "context"):
        _capture(getattr(model, name), store, name)
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        logits = model(images)
    assert logits.shape == (2, 1, 64, 96)
    _, encoded = store["encoder"]
    cram_in, cram_out = store["cram"]
    assert cram_in is encoded
    sizes = [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]
    assert [tuple(level.shape[1:]) for level in cram_in] == [
        (count, *size) for count, size in zip(model.encoder.channels, sizes, strict=True)
    ]
    weights = model.cram.weights(cram_in)
    for level, attended, weight in zip(cram_in, cram_out, weights, strict=True):
        torch.testing.assert_close(attended, level * weight)  # eq. (2)
    context_in, _ = store["context"]
    torch.testing.assert_close(context_in, cram_out[-1].mean(dim=(2, 3), keepdim=True))
    rram_in, rram_out = store["rram"]
    assert [tuple(level.shape[1:]) for level in rram_in] == [
        (width, *size) for width, size in zip(TINY["decoder_widths"], sizes, strict=True)
    ]
    for level, attended, weight in zip(rram_in, rram_out, model.rram.weights(rram_in), strict=True):
        torch.testing.assert_close(attended, level * weight)  # eq. (3), then A^r_i * D_i
    assert isinstance(model.cram, ChannelRecurrentAttention) and model.cram.order == "deep_to_shallow"
    assert isinstance(model.rram, RegionRecurrentAttention) and model.rram.order == "shallow_to_deep"


def test_the_output_depends_on_the_global_context() -> None:
    model = _ranet().eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(images)
        model.context[0].bias.add_(1.0)
        after = model(images)
    assert not torch.allclose(before, after)


def test_eval_mode_uses_running_statistics_and_train_mode_the_batch() -> None:
    """Batch norm: in eval() each slice's output is independent of the rest of the batch; in train() it is not."""
    model = _ranet()
    images = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images)[:1], model(images[:1]), rtol=1e-4, atol=1e-5)
        model.train()
        assert not torch.allclose(model(images)[:1], model(images[:1]), atol=1e-4)


def test_encoder_weights_are_loaded_from_a_local_file(tmp_path: Path) -> None:
    source = ResNetEncoder(18, 3, base_width=8)
    state = dict(source.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.randn(5, 64), torch.randn(5)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = _ranet(sequences=["t2"], encoder_weights=str(path))
    torch.testing.assert_close(model.encoder.conv1.weight.data, state["conv1.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(model.encoder.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):
        _ranet(encoder_weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="ResNet-34"):
        _ranet(encoder_depth=34, encoder_weights=str(path))


def test_default_config_is_resnet34_with_torchvision_widths() -> None:
    config = RANetConfig()
    assert config.sequences == ("t1", "t1c", "t2")
    model = RANet(config)
    assert count_parameters(model.encoder) == 21_797_672 - (512 * 1000 + 1000)  # torchvision resnet34 minus fc
    assert model.encoder.channels == (64, 64, 128, 256, 512)


@pytest.mark.parametrize("shape", [(1, 3, 48, 64), (1, 2, 64, 64), (3, 64, 64)])
def test_bad_inputs_are_value_errors(shape: tuple[int, ...]) -> None:
    model = build_model("ranet", tiny_config("ranet"))
    with pytest.raises(ValueError):
        model(torch.randn(shape))


def test_group_norm_decoder() -> None:
    model = _ranet(norm="group", decoder_widths=[8, 8, 16, 16, 16])
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in model.decoders.modules())
    assert model(torch.randn(1, 3, 64, 32)).shape == (1, 1, 64, 32)
    with pytest.raises(ValueError, match="batch norm needs more than one value"):
        model(torch.randn(1, 3, 32, 32))  # the encoder is batch norm whatever the decoder's norm
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 1, 32, 32)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"encoder_depth": 101}, "encoder_depth"),
        ({"decoder_widths": (8, 8, 8, 8)}, "5 values"),
        ({"region_size": 0}, "region_size"),
        ({"norm": "group", "decoder_widths": (8, 8, 8, 8, 12)}, "decoder_widths\\[4\\]"),
        ({"norm": "instance"}, "norm"),
        ({"sequences": ("t1", "t1")}, "sequences"),
        ({"prior_probability": 1.5}, "prior_probability"),
    ],
)
def test_invalid_configs_are_value_errors(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RANetConfig(**overrides)  # type: ignore[arg-type]
