"""The frozen backbone, box crops and the per-slice feature cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as functional

from npcseg.detection.boxes import Box
from npcseg.detection.config import DetectorConfig
from npcseg.detection.features import Backbone, SliceFeatures, build_backbone, resize_crop
from npcseg.models.resnet import ResNetEncoder

TINY = DetectorConfig(backbone_width=4, input_size=32)


def test_backbone_is_frozen_and_pools_the_deepest_level() -> None:
    backbone = build_backbone(TINY, 2)
    assert backbone.feature_size == backbone.encoder.channels[-1] == 32
    assert not any(parameter.requires_grad for parameter in backbone.parameters())
    assert not backbone.train().training and not backbone.encoder.training  # stays in eval mode
    images = torch.randn(3, 2, 32, 32)
    expected = backbone.encoder(images)[-1].mean(dim=(2, 3))
    assert torch.allclose(backbone(images), expected)


def test_random_backbone_follows_the_seed_and_leaves_torch_state_alone() -> None:
    state = torch.random.get_rng_state()
    first, again = build_backbone(TINY, 3), build_backbone(TINY, 3)
    other = build_backbone(DetectorConfig(backbone_width=4, input_size=32, seed=1), 3)
    assert torch.equal(torch.random.get_rng_state(), state)
    weight = "encoder.conv1.weight"
    assert torch.equal(first.state_dict()[weight], again.state_dict()[weight])
    assert not torch.equal(first.state_dict()[weight], other.state_dict()[weight])


def test_backbone_from_torchvision_named_weights(tmp_path: Path) -> None:
    source = ResNetEncoder(18, 3, base_width=4)
    torch.save({**source.state_dict(), "fc.weight": torch.zeros(2, 32)}, tmp_path / "resnet.pth")
    config = DetectorConfig(backbone_width=4, input_size=32, backbone_weights=str(tmp_path / "resnet.pth"))
    backbone = build_backbone(config, 3)
    assert torch.equal(backbone.encoder.conv1.weight, source.conv1.weight)


def test_backbone_from_a_segmentation_checkpoint_or_its_run_folder(tmp_path: Path) -> None:
    encoder = ResNetEncoder(18, 2, base_width=8)  # its own width, not the config's
    model = {f"encoder.{key}": value for key, value in encoder.state_dict().items()}
    model["decoder.weight"] = torch.ones(3)
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": model, "epoch": 4, "model_name": "ranet"}, run / "checkpoint_best.pt")
    for weights in (run / "checkpoint_best.pt", run):
        backbone = build_backbone(DetectorConfig(backbone_width=4, backbone_weights=str(weights)), 2)
        assert backbone.feature_size == 64
        key = "layer4.1.conv2.weight"
        assert torch.equal(backbone.encoder.state_dict()[key], encoder.state_dict()[key])
    with pytest.raises(ValueError, match=r"encoder does not fit a ResNet-34 backbone"):
        build_backbone(DetectorConfig(encoder_depth=34, backbone_weights=str(run)), 2)


def test_backbone_weights_errors(tmp_path: Path) -> None:
    torch.save({"something": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt: neither torchvision-named ResNet-18 weights nor an npcseg"):
        build_backbone(DetectorConfig(backbone_weights=str(tmp_path / "other.pt")), 3)
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        build_backbone(DetectorConfig(backbone_weights=str(tmp_path / "missing.pt")), 3)


def test_resize_crop_of_the_whole_image_is_a_plain_resize() -> None:
    image = np.random.default_rng(0).normal(size=(2, 20, 30)).astype(np.float32)
    for size in (8, 45):
        crop = resize_crop(image, Box(0.0, 0.0, 20.0, 30.0), size)
        expected = functional.interpolate(torch.from_numpy(image)[None], size=(size, size), mode="bilinear")[0]
        assert crop.shape == (2, size, size)
        np.testing.assert_allclose(crop, expected.numpy(), atol=1e-5)


def test_resize_crop_by_hand() -> None:
    image = np.tile(np.arange(4, dtype=np.float32), (1, 4, 1))  # value = column index (pixel centre at k + 0.5)
    np.testing.assert_allclose(resize_crop(image, Box(0.0, 1.0, 4.0, 3.0), 2)[0], [[1.0, 2.0], [1.0, 2.0]])
    # columns sampled at 0.25, 0.75, 1.25, 1.75: values 0 (border repeated), 0.25, 0.75, 1.25
    np.testing.assert_allclose(resize_crop(image, Box(0.0, 0.0, 4.0, 2.0), 4)[0, 0], [0.0, 0.25, 0.75, 1.25])
    rows = np.transpose(image, (0, 2, 1))  # value = row index
    np.testing.assert_allclose(resize_crop(rows, Box(2.0, 0.0, 4.0, 4.0), 2)[0, :, 0], [2.0, 3.0])


class CountingBackbone(Backbone):
    """A backbone that counts its forward passes and the images it saw."""

    def __init__(self, encoder: ResNetEncoder) -> None:
        super().__init__(encoder)
        self.num_calls = 0
        self.num_images = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.num_calls += 1
        self.num_images += int(images.shape[0])
        return super().forward(images)


def counting_backbone() -> CountingBackbone:
    torch.manual_seed(0)
    return CountingBackbone(ResNetEncoder(18, 2, base_width=4))


def test_slice_features_cache_crops_by_pixel_window() -> None:
    image = np.random.default_rng(1).normal(size=(2, 40, 40)).astype(np.float32)
    backbone = counting_backbone()
    features = SliceFeatures(image, backbone, 32)
    assert backbone.num_calls == 1  # the global features
    whole = backbone(torch.from_numpy(resize_crop(image, Box(0.0, 0.0, 40.0, 40.0), 32))[None])[0].numpy()
    np.testing.assert_allclose(features.global_features, whole, rtol=1e-5, atol=1e-6)
    backbone.num_calls = 0

    first = features.crop_features(Box(1.0, 1.0, 10.0, 10.0))
    same_window = features.crop_features(Box(1.2, 1.3, 9.8, 9.1))  # pixel window (1, 1, 10, 10) again
    assert backbone.num_calls == 1 and np.array_equal(first, same_window)
    direct = backbone(torch.from_numpy(resize_crop(image, Box(1.0, 1.0, 10.0, 10.0), 32))[None])[0].numpy()
    np.testing.assert_allclose(first, direct, rtol=1e-5, atol=1e-6)
    backbone.num_calls = backbone.num_images = 0

    boxes = [Box(1.0, 1.0, 10.0, 10.0), Box(5.0, 5.0, 30.0, 20.0), Box(0.0, 0.0, 8.0, 8.0), Box(5.0, 5.0, 30.0, 20.0)]
    many = features.crop_features_many(boxes)
    assert many.shape == (4, backbone.feature_size)
    assert (backbone.num_calls, backbone.num_images) == (1, 2)  # one batch of the two new windows
    assert np.array_equal(many[0], first) and np.array_equal(many[1], many[3])
    np.testing.assert_allclose(many[2], features.crop_features(Box(0.0, 0.0, 8.0, 8.0)))
    assert backbone.num_calls == 1
    assert (features.num_misses, features.num_hits) == (3, 4)
    assert features.crop_features_many([]).shape == (0, backbone.feature_size)


def test_a_feature_grid_keeps_where_the_features_are() -> None:
    torch.manual_seed(0)
    encoder = ResNetEncoder(18, 3, base_width=8)
    images = torch.rand(2, 3, 128, 128)
    deepest = encoder.eval()(images)[-1]  # (2, 64, 4, 4)
    gridded = Backbone(encoder, grid=2)(images)
    assert gridded.shape == (2, 64 * 4) and Backbone(encoder).feature_size == 64
    # cell (row 1, column 0) of channel 5 = the mean of the deepest map's lower-left 2 x 2 block, channel-major order
    cells = gridded.reshape(2, 64, 2, 2)
    assert torch.allclose(cells[:, 5, 1, 0], deepest[:, 5, 2:4, 0:2].mean(dim=(1, 2)), atol=1e-6)
    assert torch.allclose(cells.mean(dim=(2, 3)), Backbone(encoder)(images), atol=1e-6)
    with pytest.raises(ValueError, match="input_size"):
        DetectorConfig(feature_grid=2, input_size=32)
