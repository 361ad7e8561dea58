"""DDNN: VGG-16 layer list and parameter count, decoder without skips, size checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from npcseg.models import build_model, count_parameters, tiny_config
from npcseg.models.ddnn import DDNN, DDNNConfig


def test_default_is_vgg16_encoder_and_its_mirror() -> None:
    model = build_model("ddnn")
    assert isinstance(model, DDNN)
    convs = [module for module in model.encoder.modules() if isinstance(module, nn.Conv2d)]
    assert len(convs) == 13  # VGG-16's convolutional layers
    assert [conv.out_channels for conv in convs] == [64] * 2 + [128] * 2 + [256] * 3 + [512] * 3 + [512] * 3
    pools = [module for module in model.encoder.modules() if isinstance(module, nn.MaxPool2d)]
    assert len(pools) == 5
    deconvs = [module for module in model.decoder.modules() if isinstance(module, nn.ConvTranspose2d)]
    assert [deconv.out_channels for deconv in deconvs] == [512, 512, 256, 128, 64]
    decoder_convs = [
        module
        for module in model.decoder.modules()
        if isinstance(module, nn.Conv2d) and not isinstance(module, nn.ConvTranspose2d)
    ]
    assert len(decoder_convs) == 13


def test_parameter_count_by_hand() -> None:
    # Encoder: 3x3 convolutions without bias, each followed by GroupNorm (2 parameters per channel).
    layers = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256)]
    layers += [(256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    encoder = sum(9 * cin * cout + 2 * cout for cin, cout in layers)
    # Decoder levels: 2x2 transposed convolution (with bias), then the mirrored 3x3 convolutions.
    levels = [(512, 512, 3), (512, 512, 3), (512, 256, 3), (256, 128, 2), (128, 64, 2)]
    decoder = sum(4 * cin * cout + cout + n * (9 * cout * cout + 2 * cout) for cin, cout, n in levels)
    head = 64 + 1
    assert count_parameters(build_model("ddnn")) == encoder + decoder + head == 33_808_065


def test_decoder_sees_only_the_bottleneck() -> None:
    torch.manual_seed(0)
    model = build_model("ddnn", tiny_config("ddnn")).eval()
    assert isinstance(model, DDNN)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        bottom = images
        for block in model.encoder:
            bottom = block(bottom)
        assert bottom.shape == (2, 16, 8, 8)  # 3 poolings of 64
        rebuilt = bottom
        for level in model.decoder:
            rebuilt = level(rebuilt)
        torch.testing.assert_close(model.head(rebuilt), model(images))


def test_bad_sizes_and_configs_are_value_errors() -> None:
    model = build_model("ddnn", tiny_config("ddnn"))
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.zeros(1, 3, 64, 60))
    with pytest.raises(ValueError, match="channels"):
        model(torch.zeros(1, 4, 64, 64))
    with pytest.raises(ValueError, match="multiples of 32"):
        build_model("ddnn", {"widths": [8, 8, 8, 8, 8]})(torch.zeros(1, 3, 48, 48))
    with pytest.raises(ValueError, match="equally long"):
        DDNNConfig(widths=(8, 16), convs_per_block=(1,))
    with pytest.raises(ValueError, match="at least one convolution"):
        DDNNConfig(widths=(8,), convs_per_block=(0,))
