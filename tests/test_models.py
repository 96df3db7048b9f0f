import pytest
import torch

from rplib import models
from rplib.models import classifier_name, first_layer_name, prunable_parameters


@pytest.mark.parametrize("name,kw,in_shape,nprunable", [
    ("resnet20", {}, (3, 32, 32), 22), ("resnet32", {"width": 2}, (3, 32, 32), 34),
    ("resnet56", {}, (3, 32, 32), 58), ("vgg11", {}, (3, 32, 32), 9), ("vgg19", {}, (3, 32, 32), 17),
    ("wrn", {"depth": 16, "width": 2}, (3, 32, 32), 17), ("mlp", {"hidden": (64, 32)}, (1, 40), 3),
    ("cnn1d", {"depth": 5}, (1, 40), 6), ("lenet5", {}, (1, 28, 28), 5), ("convnet", {}, (3, 32, 32), 4),
])
def test_models_forward_and_prunable_layers(name, kw, in_shape, nprunable):
    torch.manual_seed(0)
    m = models.build(name, 10, in_shape=in_shape, **kw)
    out = m(torch.randn(2, *in_shape))
    assert out.shape == (2, 10)
    params = prunable_parameters(m)
    # ResNets count the 1x1 projection shortcuts (2 of them in the CIFAR ResNets)
    assert len(params) == nprunable
    assert classifier_name(m) == list(params)[-1]
    assert first_layer_name(m) == list(params)[0]


def test_resnet_widths_and_shortcuts():
    m = models.build("resnet32", 10, width=2)  # the sanity-checking paper's doubled ResNet-32: 32/64/128
    assert m.conv1.out_channels == 32 and m.fc.in_features == 128
    assert isinstance(m.layer2[0].shortcut[0], torch.nn.Conv2d) and m.layer2[0].shortcut[0].kernel_size == (1, 1)


def test_imagenet_models_from_torchvision():
    m = models.build("resnet50", 7, in_shape=(3, 64, 64))
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    assert classifier_name(m) == "fc.weight"


def test_width_multiplier_scales_parameters():
    small = sum(p.numel() for p in models.build("cnn1d", 10, in_shape=(1, 40)).parameters())
    wide = sum(p.numel() for p in models.build("cnn1d", 10, in_shape=(1, 40), width=2).parameters())
    assert wide > 2.5 * small


def test_bad_model_input():
    with pytest.raises(ValueError, match="valid models"):
        models.build("resnet7", 10)
    with pytest.raises(ValueError, match="6n\\+2"):
        models.build("resnet", 10, depth=21)
    with pytest.raises(ValueError, match="valid options: \\['width'\\]"):
        models.build("vgg16", 10, depth=3)
    with pytest.raises(ValueError, match="width"):
        models.build("resnet20", 10, width=0)
    with pytest.raises(ValueError, match="num_classes"):
        models.build("resnet20", 1)
