"""Networks by name: CIFAR ResNets, VGG-BN, WRN, MLP, 1-D CNN, LeNet-5, a small ConvNet, ImageNet ResNets.

Every family the papers scale takes a ``width`` multiplier; the residual families take a depth.
``build(name, num_classes, in_shape=..., **options)`` is the one entry point.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["build", "available", "prunable_parameters", "classifier_name", "first_layer_name"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _register(*names: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        for n in names:
            _REGISTRY[n] = fn
        return fn

    return deco


def available() -> list[str]:
    """Names accepted by :func:`build`."""
    return sorted(_REGISTRY)


def build(name: str, num_classes: int, in_shape: Sequence[int] = (3, 32, 32), **options) -> nn.Module:
    """Build the network ``name`` for ``num_classes`` classes and inputs of shape ``in_shape`` (C, H, W) or (C, L).

    Raises ``ValueError`` naming the bad value and the valid choices for an unknown model or option.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(available())}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    fn = _REGISTRY[name]
    params = inspect.signature(fn).parameters
    valid = [p for p in params if p not in ("name", "num_classes", "in_shape")]
    bad = sorted(set(options) - set(valid))
    if bad:
        raise ValueError(f"unknown option(s) {bad} for model {name!r}; valid options: {valid}")
    width = options.get("width", 1.0)
    if not (isinstance(width, (int, float)) and width > 0):
        raise ValueError(f"width multiplier must be > 0, got {width!r}")
    model = fn(name=name, num_classes=num_classes, in_shape=tuple(in_shape), **options)
    model.in_shape = tuple(in_shape)
    return model


def prunable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weights of every Conv and Linear layer (first and last included), keyed by parameter name.

    Biases and normalisation parameters are never pruned.
    """
    return {
        f"{mod_name}.weight" if mod_name else "weight": mod.weight
        for mod_name, mod in model.named_modules()
        if isinstance(mod, PRUNABLE_TYPES)
    }


def classifier_name(model: nn.Module) -> str:
    """Parameter name of the classifier: the last Linear layer in module order."""
    names = [f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no Linear classifier layer")
    return names[-1]


def first_layer_name(model: nn.Module) -> str:
    """Parameter name of the first prunable layer in module order."""
    return next(iter(prunable_parameters(model)))


def _ch(base: int, width: float) -> int:
    return max(1, int(round(base * width)))


def _init_weights(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


# --------------------------------------------------------------------------- CIFAR ResNets (He et al. 2016)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:  # 1x1-conv + BN projection, as in the random-pruning code
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs; stage widths w, 2w, 4w with w = 16 * width."""

    residual = True

    def __init__(self, depth: int, num_classes: int, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
        n = (depth - 2) // 6
        widths = [_ch(16, width), _ch(32, width), _ch(64, width)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, c = [], widths[0]
        for i, w in enumerate(widths):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(c, w, 2 if (i > 0 and j == 0) else 1))
                c = w
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


@_register("resnet", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110")
def _resnet(name: str, num_classes: int, in_shape: tuple[int, ...], width: float = 1.0, depth: int | None = None):
    if depth is None:
        if name == "resnet":
            raise ValueError("model 'resnet' needs depth=6n+2; or use resnet20/32/44/56/110")
        depth = int(name.removeprefix("resnet"))
    return CifarResNet(depth, num_classes, in_shape[0], width)


# --------------------------------------------------------------------------- Wide ResNets (Zagoruyko & Komodakis 2016)


class WideBlock(nn.Module):
    """Pre-activation block of WRN."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = torch.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(torch.relu(self.bn2(y)))
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    """WRN-d-k for 32x32 inputs: (d-4)/6 blocks per stage, widths 16k, 32k, 64k."""

    residual = True

    def __init__(self, depth: int, k: float, num_classes: int, in_channels: int = 3):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WRN depth must be 6n+4 (10, 16, 22, 28, ...), got {depth}")
        n = (depth - 4) // 6
        widths = [_ch(16 * k, 1.0), _ch(32 * k, 1.0), _ch(64 * k, 1.0)]
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        blocks, c = [], 16
        for i, w in enumerate(widths):
            for j in range(n):
                blocks.append(WideBlock(c, w, 2 if (i > 0 and j == 0) else 1))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.blocks(self.conv1(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


@_register("wrn")
def _wrn(name: str, num_classes: int, in_shape: tuple[int, ...], depth: int = 22, width: float = 2.0):
    return WideResNet(depth, width, num_classes, in_shape[0])


# --------------------------------------------------------------------------- VGG with batch norm for CIFAR

_VGG_CFG = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """VGG-BN for CIFAR: 3x3 conv + BN + ReLU stacks, global average pooling, one Linear classifier."""

    residual = False

    def __init__(self, depth: int, num_classes: int, in_channels: int = 3, width: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in _VGG_CFG[depth]:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                w = _ch(v, width)
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                c = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


@_register("vgg11", "vgg13", "vgg16", "vgg19")
def _vgg(name: str, num_classes: int, in_shape: tuple[int, ...], width: float = 1.0):
    return VGG(int(name.removeprefix("vgg")), num_classes, in_shape[0], width)


# --------------------------------------------------------------------------- MLP


class MLP(nn.Module):
    residual = False

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int):
        super().__init__()
        dims = [in_features, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.fc = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.fc(x)


@_register("mlp")
def _mlp(name: str, num_classes: int, in_shape: tuple[int, ...], hidden: Sequence[int] = (256, 256), width: float = 1.0):
    in_features = 1
    for s in in_shape:
        in_features *= s
    return MLP(in_features, [_ch(h, width) for h in hidden], num_classes)


# --------------------------------------------------------------------------- 1-D CNN for MNIST-1D


class CNN1d(nn.Module):
    """1-D CNN after the MNIST-1D authors' ConvNet: three stride-2 conv layers (more are residual, stride 1)."""

    residual = True

    def __init__(self, in_channels: int, length: int, num_classes: int, depth: int = 3, width: float = 1.0):
        super().__init__()
        if depth < 1:
            raise ValueError(f"cnn1d depth must be >= 1, got {depth}")
        c = _ch(32, width)
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        c_prev = in_channels
        for i in range(depth):
            k, s = (5, 2) if i == 0 else (3, 2 if i < 3 else 1)
            self.convs.append(nn.Conv1d(c_prev, c, k, s, k // 2, bias=False))
            self.bns.append(nn.BatchNorm1d(c))
            c_prev = c
            length = (length + 2 * (k // 2) - k) // s + 1
        self.fc = nn.Linear(c * length, num_classes)
        _init_weights(self)
        for bn in self.bns[3:]:  # residual branches start as identity (zero-init of their last BN, Goyal et al. 2017)
            nn.init.zeros_(bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            x = torch.relu(bn(conv(x))) if i < 3 else torch.relu(x + bn(conv(x)))  # layers past the third are residual
        return self.fc(torch.flatten(x, 1))


@_register("cnn1d")
def _cnn1d(name: str, num_classes: int, in_shape: tuple[int, ...], depth: int = 3, width: float = 1.0):
    if len(in_shape) != 2:
        raise ValueError(f"cnn1d needs in_shape (C, L), got {in_shape}")
    return CNN1d(in_shape[0], in_shape[1], num_classes, depth, width)


# --------------------------------------------------------------------------- LeNet-5 and a small ConvNet


def _flat_features(features: nn.Module, in_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(features(torch.zeros(1, *in_shape)).numel())


class LeNet5(nn.Module):
    residual = False

    def __init__(self, in_shape: tuple[int, ...], num_classes: int, width: float = 1.0):
        super().__init__()
        c1, c2 = _ch(6, width), _ch(16, width)
        self.features = nn.Sequential(
            nn.Conv2d(in_shape[0], c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        n = _flat_features(self.features, in_shape)
        self.fc1 = nn.Linear(n, _ch(120, width))
        self.fc2 = nn.Linear(_ch(120, width), _ch(84, width))
        self.fc3 = nn.Linear(_ch(84, width), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.features(x), 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


@_register("lenet5")
def _lenet5(name: str, num_classes: int, in_shape: tuple[int, ...], width: float = 1.0):
    if len(in_shape) != 3 or min(in_shape[1:]) < 12:
        raise ValueError(f"lenet5 needs in_shape (C, H, W) with H, W >= 12, got {in_shape}")
    return LeNet5(in_shape, num_classes, width)


class ConvNet(nn.Module):
    """Small ConvNet: three conv-BN-ReLU-pool stages (32, 64, 128 channels) and a Linear classifier."""

    residual = False

    def __init__(self, in_shape: tuple[int, ...], num_classes: int, width: float = 1.0):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_shape[0]
        for base in (32, 64, 128):
            w = _ch(base, width)
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            c = w
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(_flat_features(self.features, in_shape), num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


@_register("convnet")
def _convnet(name: str, num_classes: int, in_shape: tuple[int, ...], width: float = 1.0):
    if len(in_shape) != 3:
        raise ValueError(f"convnet needs in_shape (C, H, W), got {in_shape}")
    return ConvNet(in_shape, num_classes, width)


# --------------------------------------------------------------------------- ImageNet models from torchvision


@_register("resnet50", "wide_resnet50_2")
def _imagenet(name: str, num_classes: int, in_shape: tuple[int, ...]):
    import torchvision

    model = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
    model.residual = True
    return model
