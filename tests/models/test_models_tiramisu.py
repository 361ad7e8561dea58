"""FC-DenseNet (Tiramisu): parameter counts against the paper, channel bookkeeping, dense-block semantics."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from npcseg.config import config_from_dict
from npcseg.models import build_model, count_parameters, tiny_config
from npcseg.models.tiramisu import VARIANTS, FCDenseNet, FCDenseNetConfig, TiramisuDenseBlock


def _normalised_channels(model: nn.Module) -> int:
    return sum(module.num_channels for module in model.modules() if isinstance(module, nn.GroupNorm))


@pytest.mark.parametrize(
    ("variant", "paper_millions"),
    # Jégou et al. 2017, Table 2 / section 4: FC-DenseNet67 3.5 M and FC-DenseNet103 9.4 M parameters.
    [("fc-densenet67", 3.5), ("fc-densenet103", 9.4)],
)
def test_parameter_count_matches_the_paper(variant: str, paper_millions: float) -> None:
    model = build_model("fc-densenet", VARIANTS[variant])
    trainable = count_parameters(model)
    # The paper's batch normalisation also stores a running mean and variance per channel, which Lasagne (the
    # paper's framework) counts as parameters; our group normalisation has the same 2 trainable ones per channel.
    with_running_statistics = trainable + 2 * _normalised_channels(model)
    assert round(with_running_statistics / 1e6, 1) == paper_millions
    assert abs(trainable / 1e6 - paper_millions) / paper_millions < 0.015  # 9.32 M and 3.46 M trainable


def test_fc_densenet56_is_the_default_and_about_the_papers_size() -> None:
    model = build_model("fc-densenet")
    assert FCDenseNetConfig() == config_from_dict(FCDenseNetConfig, VARIANTS["fc-densenet56"])
    # 1.37 M trainable, 1.40 M with running statistics; the paper rounds FC-DenseNet56 to 1.5 M.
    assert 1.3e6 < count_parameters(model) < 1.5e6


def test_fc_densenet103_feature_map_counts() -> None:
    # m = number of maps after each block: first conv 48; a down block adds n k; the bottleneck block sees 656 and
    # passes on only its 15 * 16 = 240 new maps; an up block sees TU(previous new maps) + skip and adds n k.
    model = build_model("fc-densenet", VARIANTS["fc-densenet103"])
    assert isinstance(model, FCDenseNet)
    assert model.first.out_channels == 48
    assert [block.out_channels for block in model.down_blocks] == [112, 192, 304, 464, 656]
    assert model.bottleneck.out_channels == 240
    up_m = [block.layers[0][0].num_channels + len(block.layers) * 16 for block in model.up_blocks]
    assert up_m == [1088, 816, 576, 384, 256]
    assert [block.out_channels for block in model.up_blocks] == [192, 160, 112, 80, 256]
    assert model.head.in_channels == 256


def test_dense_block_keeps_or_drops_its_input() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6)
    keep = TiramisuDenseBlock(8, 3, 4, keep_input=True, dropout=0.0, num_groups=4).eval()
    drop = TiramisuDenseBlock(8, 3, 4, keep_input=False, dropout=0.0, num_groups=4).eval()
    drop.load_state_dict(keep.state_dict())
    with torch.no_grad():
        kept, new = keep(x), drop(x)
    assert kept.shape == (2, 8 + 12, 6, 6)
    assert new.shape == (2, 12, 6, 6)
    torch.testing.assert_close(kept[:, :8], x)
    torch.testing.assert_close(kept[:, 8:], new)
    # layer 2 sees the input and layer 1's maps: its first normalisation has 8 + 4 channels
    assert [layer[0].num_channels for layer in keep.layers] == [8, 12, 16]


def test_dropout_is_active_in_training_only() -> None:
    model = build_model("fc-densenet", dataclasses.replace(tiny_config("fc-densenet"), dropout=0.5))
    images = torch.randn(1, 3, 32, 32)
    model.train()
    torch.manual_seed(0)
    first = model(images)
    second = model(images)
    assert not torch.equal(first, second)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(images), model(images))


def test_bad_sizes_and_configs_are_value_errors() -> None:
    model = build_model("fc-densenet", tiny_config("fc-densenet"))
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.zeros(1, 3, 36, 32))
    with pytest.raises(ValueError, match="channels"):
        model(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="equally long"):
        FCDenseNetConfig(down_layers=(4, 4), up_layers=(4,))
    with pytest.raises(ValueError, match="group-norm"):
        FCDenseNetConfig(growth_rate=10)
    with pytest.raises(ValueError, match="dropout"):
        FCDenseNetConfig(dropout=1.0)
