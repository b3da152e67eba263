"""The paper's three architectures, exact to the authors' TensorFlow graph.

Every network ends in: last feature map A(x) (N, C, h, w), no activation on it -> global average
pool -> linear head W (K, C) without bias. So ``CAM_c(x) = sum_k W[c, k] A_k(x)`` and the logit
``Z_c(x)`` is the grid mean of ``CAM_c(x)`` (docs/method.md#networks). Convolutions use TensorFlow's
'SAME' padding (extra row/column at the bottom/right) and the activation comes before every
convolution except the first (pre-activation). The activation is ReLU, as in the paper, or softplus
for a network trained with ``activation="softplus"`` (``ACTIVATIONS``).
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding: output size ceil(input / stride). Symmetric padding
    goes to the convolution itself (the same result, without copying the input into a padded
    tensor: a fifth faster on wresnet); an extra bottom/right row or column needs ``F.pad``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right, top, bottom = pads = _same_padding(x.shape[-2:], self.kernel_size, self.stride)
        if left == right and top == bottom:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        return super().forward(F.pad(x, pads))


def _same_padding(size, kernel, stride) -> tuple[int, int, int, int]:
    pads = []
    for n, k, s in zip(size, kernel, stride):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    return (left, right, top, bottom)


class CAMNet(nn.Module):
    """Base class of CAM-capable models: ``features`` -> global average pool -> ``head``.

    Subclasses define ``features(x) -> A (N, C, h, w)`` and set ``self.head = nn.Linear(C, K,
    bias=False)``. Attacks, explainers and training losses use only ``features``, ``head`` and
    ``cam``, so CAM and the Int regularizer share one code path.
    """

    head: nn.Linear
    #: None: ReLU activations. A number: softplus with that beta, either the network's own activation
    #: (trained so, ``ACTIVATIONS``) or the smooth copy the authors use to differentiate through IG maps
    #: (docs/method.md#maps).
    softplus_beta: float | None = None

    def act(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) if self.softplus_beta is None else F.softplus(x, beta=self.softplus_beta)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) in [0, 1] -> logits (N, K)."""
        return self.head(self.features(x).mean(dim=(2, 3)))

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation maps of every class: (N, K, h, w); their grid mean is the logits."""
        return cam_from_features(self.features(x), self.head.weight)


def cam_from_features(features: torch.Tensor, head_weight: torch.Tensor) -> torch.Tensor:
    """features (N, C, h, w), head weight (K, C) -> CAM of every class (N, K, h, w)."""
    return torch.einsum("kc,nchw->nkhw", head_weight, features)


class SmallGap(CAMNet):
    """smallgap: conv 16@4x4 s2 -> conv 32@4x4 s2 -> conv 100@7x7 s1 -> GAP -> linear.

    MNIST (1, 28, 28) gives a 7x7 CAM grid; CIFAR-10 (3, 32, 32) an 8x8 grid.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.conv1 = SameConv2d(in_channels, 16, 4, stride=2)
        self.conv2 = SameConv2d(16, 32, 4, stride=2)
        self.conv3 = SameConv2d(32, 100, 7, stride=1)
        self.head = nn.Linear(100, num_classes, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.conv2(self.act(x))
        return self.conv3(self.act(x))


class Pool(CAMNet):
    """pool: conv 32@5x5 -> maxpool 2 -> conv 64@5x5 -> maxpool 2 -> GAP -> linear (7x7 CAM)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.conv1 = SameConv2d(in_channels, 32, 5)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = SameConv2d(32, 64, 5)
        self.pool2 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.head = nn.Linear(64, num_classes, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.conv1(x))
        return self.pool2(self.conv2(self.act(x)))


class _ResidualBlock(nn.Module):
    """Pre-activation block: conv(stride) then conv(stride 1) whose output gets the input added.

    Where the shapes differ, the shortcut is average-pooled by the stride and zero-padded in
    channels, half on each side (the authors' 'r1' layers).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv_a = SameConv2d(in_channels, out_channels, 3, stride=stride)
        self.conv_b = SameConv2d(out_channels, out_channels, 3, stride=1)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor, act=F.relu) -> torch.Tensor:
        out = self.conv_b(act(self.conv_a(act(x))))
        shortcut = x
        if self.stride > 1:
            shortcut = F.avg_pool2d(shortcut, self.stride, self.stride, ceil_mode=True)
        if self.extra_channels:
            half = self.extra_channels // 2
            shortcut = F.pad(shortcut, (0, 0, 0, 0, half, self.extra_channels - half))
        return out + shortcut


class WResNet(CAMNet):
    """wresnet: conv 16@3x3, then 15 residual blocks (5 at 16, 5 at 32, 5 at 64 filters; the first
    block of the 32 and 64 stages has stride 2) -> GAP -> linear. 31 convolutions; 8x8 CAM on CIFAR.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.conv1 = SameConv2d(in_channels, 16, 3)
        blocks, channels = [], 16
        for width, first_stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(5):
                blocks.append(_ResidualBlock(channels, width, first_stride if i == 0 else 1))
                channels = width
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(64, num_classes, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for block in self.blocks:
            x = block(x, self.act)
        return x


ARCHITECTURES: dict[str, type[CAMNet]] = {"smallgap": SmallGap, "pool": Pool, "wresnet": WResNet}

#: Weight initializations: "torch" (PyTorch's defaults) or "authors" (the authors' TensorFlow code).
INITS = ("torch", "authors")

#: A network's activation, by name -> its ``CAMNet.softplus_beta``: "relu" (the paper's networks) or
#: "softplus" with beta 1 (torch's default, and the beta of the authors' smooth IG copy), a smooth
#: activation for the question whether gradient-based regularizers need one (results/activation.md).
ACTIVATIONS: dict[str, float | None] = {"relu": None, "softplus": 1.0}


@torch.no_grad()
def init_authors_(model: nn.Module) -> nn.Module:
    """Initialize in place as the authors' code does: conv weights N(0, 1/fan_in) with fan_in =
    k*k*C_in, the head N(0, 1/C_A) (C_A: channels of the last feature map), every bias 0."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()  # k*k*C_in for a conv, C_A for the head
            module.weight.normal_(0.0, fan_in ** -0.5)
            if module.bias is not None:
                module.bias.zero_()
    return model


def smooth_copy(model: CAMNet, beta: float = 10.0) -> CAMNet:
    """A copy of ``model`` with every ReLU replaced by softplus(beta): same weights, non-zero
    second derivatives, for attacks that differentiate through gradient maps such as IG. A network
    whose own activation is softplus is already smooth: its copy keeps its activation, so the
    maps and attacks see the network that was trained."""

    smooth = copy.deepcopy(model)
    if smooth.softplus_beta is None:
        smooth.softplus_beta = beta
    return smooth


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with ``model`` in eval mode, then give every submodule back its own mode (a
    model in a mixed state, e.g. training with a frozen submodule, comes back mixed)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, mode in modes:
            module.training = mode
