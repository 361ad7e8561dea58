"""ResNet encoder: torchvision's parameter counts and key names, level shapes, local weight loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from npcseg.models import count_parameters
from npcseg.models.resnet import ResNetEncoder, adapt_first_conv, load_resnet_weights

#: torchvision.models.resnet{18,34,50}(num_classes=1000) parameter counts (3 input channels, fc included).
TORCHVISION_PARAMETERS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032}


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_parameter_counts_equal_torchvision(depth: int) -> None:
    encoder = ResNetEncoder(depth, 3)
    features = encoder.channels[-1]
    classifier = features * 1000 + 1000  # the fc layer torchvision adds on top of the pooled layer4
    assert count_parameters(encoder) + classifier == TORCHVISION_PARAMETERS[depth]
    assert encoder.channels == ((64, 64, 128, 256, 512) if depth < 50 else (64, 256, 512, 1024, 2048))


def test_key_names_follow_torchvision() -> None:
    keys18 = set(ResNetEncoder(18, 3, base_width=8).state_dict())
    assert {
        "conv1.weight",
        "bn1.running_mean",
        "bn1.num_batches_tracked",
        "layer1.1.conv2.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_var",
        "layer4.1.bn2.bias",
    } <= keys18
    assert "layer1.0.downsample.0.weight" not in keys18  # identity shortcut in ResNet-18's first stage
    assert len(keys18) == 120  # torchvision's resnet18 state dict has 122 entries, two of them fc.*
    keys50 = set(ResNetEncoder(50, 3, base_width=8).state_dict())
    assert {"layer1.0.conv3.weight", "layer1.0.downsample.0.weight", "layer4.2.bn3.running_mean"} <= keys50


def test_features_match_monai_resnet_with_the_same_weights() -> None:
    """An independent implementation (MONAI's ResNet, same key names) gives the same layer4 map."""
    from monai.networks.nets import ResNet

    torch.manual_seed(0)
    oracle = ResNet(
        block="basic",
        layers=[2, 2, 2, 2],
        block_inplanes=[8, 16, 32, 64],
        spatial_dims=2,
        n_input_channels=2,
        conv1_t_size=7,
        conv1_t_stride=2,
        num_classes=3,
    ).eval()
    weights = {
        key: value if not key.endswith("downsample.0.bias") else torch.zeros_like(value)
        for key, value in oracle.state_dict().items()
    }
    oracle.load_state_dict(weights)  # MONAI's shortcut convolutions have a bias; zero it to match torchvision
    encoder = ResNetEncoder(18, 2, base_width=8).eval()
    encoder.load_state_dict({key: value for key, value in weights.items() if key in encoder.state_dict()})
    captured: list[torch.Tensor] = []
    oracle.layer4.register_forward_hook(lambda module, inputs, output: captured.append(output))
    images = torch.randn(2, 2, 64, 96)
    with torch.no_grad():
        oracle(images)
        levels = encoder(images)
    torch.testing.assert_close(levels[-1], captured[0])


def test_levels_have_the_documented_sizes_and_channels() -> None:
    encoder = ResNetEncoder(50, 4, base_width=8)
    levels = encoder(torch.randn(1, 4, 64, 96))
    assert [tuple(level.shape) for level in levels] == [
        (1, 8, 32, 48),
        (1, 32, 16, 24),
        (1, 64, 8, 12),
        (1, 128, 4, 6),
        (1, 256, 2, 3),
    ]
    assert encoder.channels == (8, 32, 64, 128, 256)


@pytest.mark.parametrize("shape", [(1, 3, 64, 64), (1, 2, 48, 64), (2, 64, 64)])
def test_bad_inputs_are_value_errors(shape: tuple[int, ...]) -> None:
    encoder = ResNetEncoder(18, 2, base_width=8)
    with pytest.raises(ValueError):
        encoder(torch.randn(shape))


def test_bad_depth_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="depth"):
        ResNetEncoder(101, 3)


def _torchvision_file(tmp_path: Path, depth: int = 18, *, wrap: bool = False) -> tuple[Path, dict[str, torch.Tensor]]:
    """A 3-channel state dict with torchvision names (fc included), as torchvision would save it."""
    torch.manual_seed(1)
    source = ResNetEncoder(depth, 3, base_width=8)
    for module in source.modules():  # non-trivial running statistics, so that buffers are checked too
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    state = dict(source.state_dict())
    state["fc.weight"] = torch.randn(10, source.channels[-1])
    state["fc.bias"] = torch.randn(10)
    path = tmp_path / f"resnet{depth}.pth"
    torch.save({"state_dict": state} if wrap else state, path)
    return path, state


@pytest.mark.parametrize("wrap", [False, True])
def test_loading_copies_every_tensor_and_ignores_fc(tmp_path: Path, wrap: bool) -> None:
    path, state = _torchvision_file(tmp_path, wrap=wrap)
    encoder = ResNetEncoder(18, 3, base_width=8)
    report = load_resnet_weights(encoder, path)
    assert report.ignored == ("fc.bias", "fc.weight")
    assert not report.first_conv_adapted
    assert report.num_loaded == len(state) - 2
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, state[key]), key


@pytest.mark.parametrize("channels", [1, 4])
def test_first_convolution_is_adapted_to_other_channel_counts(tmp_path: Path, channels: int) -> None:
    path, state = _torchvision_file(tmp_path)
    encoder = ResNetEncoder(18, channels, base_width=8).eval()
    assert load_resnet_weights(encoder, path).first_conv_adapted
    rgb = state["conv1.weight"]
    expected = rgb.mean(dim=1, keepdim=True).repeat(1, channels, 1, 1) * 3 / channels
    torch.testing.assert_close(encoder.conv1.weight.data, expected)
    torch.testing.assert_close(encoder.conv1.weight.data.sum(dim=1), rgb.sum(dim=1))
    # a grey image (the same value in every channel) gives the RGB network's features
    reference = ResNetEncoder(18, 3, base_width=8).eval()
    load_resnet_weights(reference, path)
    grey = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(encoder(grey.repeat(1, channels, 1, 1))[-1], reference(grey.repeat(1, 3, 1, 1))[-1])
    for key in ("layer3.1.conv2.weight", "bn1.running_var"):
        assert torch.equal(encoder.state_dict()[key], state[key])


def test_adapt_first_conv_keeps_matching_weights() -> None:
    weight = torch.randn(4, 3, 7, 7)
    assert adapt_first_conv(weight, 3) is weight
    assert adapt_first_conv(weight, 2).shape == (4, 2, 7, 7)


def test_wrong_files_are_clear_errors(tmp_path: Path) -> None:
    path, state = _torchvision_file(tmp_path, depth=34)
    with pytest.raises(ValueError, match=r"does not fit a ResNet-18.*unexpected key\(s\): layer1\.2\."):
        load_resnet_weights(ResNetEncoder(18, 3, base_width=8), path)
    with pytest.raises(ValueError, match=r"wrong shape.*conv1\.weight: file \(8, 3, 7, 7\) vs encoder \(16, 3, 7, 7\)"):
        load_resnet_weights(ResNetEncoder(34, 3, base_width=16), path)
    partial = {key: value for key, value in state.items() if not key.startswith("layer4.1.")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"missing key\(s\): layer4\.1\.bn1\.bias"):
        load_resnet_weights(ResNetEncoder(34, 3, base_width=8), tmp_path / "partial.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="state dict"):
        load_resnet_weights(ResNetEncoder(18, 3, base_width=8), tmp_path / "list.pth")
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth"):
        load_resnet_weights(ResNetEncoder(18, 3, base_width=8), tmp_path / "nowhere.pth")


def test_old_files_without_batch_counters_load(tmp_path: Path) -> None:
    _, state = _torchvision_file(tmp_path)
    old = {key: value for key, value in state.items() if not key.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pth")
    encoder = ResNetEncoder(18, 3, base_width=8)
    assert load_resnet_weights(encoder, tmp_path / "old.pth").num_loaded == len(old) - 2
    assert torch.equal(encoder.layer2[0].downsample[1].running_mean, state["layer2.0.downsample.1.running_mean"])
