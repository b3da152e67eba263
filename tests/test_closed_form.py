"""Explainers, gradients and discrepancies on a network small enough to work out by hand (as
Captum's tests do): a 1x1 convolution (2 input channels -> 2 features, no bias), ReLU, global
average pooling and a linear head without bias, on one 2x2 image.

    conv W1 = [[1, 0], [0.5, -1]]      A_0 = relu(x0),  A_1 = relu(0.5 x0 - x1)
    head W  = [[1, 3], [-1, 1]]        CAM_0 = A_0 + 3 A_1,  CAM_1 = -A_0 + A_1,  Z_c = mean CAM_c

    x0 = [[0.2, 0.4], [0.6, 0.8]]      A_0 = x0
    x1 = [[0.05, 0.9], [0.2, 0.1]]     0.5 x0 - x1 = [[0.05, -0.7], [0.1, 0.3]] -> A_1 = [[0.05, 0], [0.1, 0.3]]

    CAM_0 = [[0.35, 0.4], [0.9, 1.7]]      Z_0 = 3.35 / 4 = 0.8375
    CAM_1 = [[-0.15, -0.4], [-0.5, -0.5]]  Z_1 = -1.55 / 4 = -0.3875

A_1 is active (m = 1) at every pixel but (0, 1). dZ_0/dx0 = (1 + 3 * 0.5 m) / 4 and dZ_0/dx1 =
3 * (-1) m / 4: 0.625 and -0.75 where A_1 is active, 0.25 and 0 where it is not.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from interp_core.interpret import get_explainer
from interp_core.metrics import discrepancy, kendall_tau, map_distance, topk_intersection, two_class_bound
from interp_core.models import CAMNet


class OneByOne(CAMNet):
    """features = relu(conv1x1(x)); the head of CAMNet."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1, bias=False)
        self.head = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, 0.0], [0.5, -1.0]]).view(2, 2, 1, 1))
            self.head.weight.copy_(torch.tensor([[1.0, 3.0], [-1.0, 1.0]]))

    def features(self, x):
        return self.act(self.conv(x))


X = torch.tensor([[[[0.2, 0.4], [0.6, 0.8]], [[0.05, 0.9], [0.2, 0.1]]]], dtype=torch.float64)
CAM_0 = [[0.35, 0.4], [0.9, 1.7]]
CAM_1 = [[-0.15, -0.4], [-0.5, -0.5]]
GRAD_X0 = [[0.625, 0.25], [0.625, 0.625]]  # dZ_0 / dx0
GRAD_X1 = [[-0.75, 0.0], [-0.75, -0.75]]   # dZ_0 / dx1


@pytest.fixture
def model():
    return OneByOne().double().eval()


def _map(values):
    return torch.tensor(values, dtype=torch.float64).view(1, 1, 2, 2)


def test_logits_and_cam(model):
    assert torch.allclose(model(X), torch.tensor([[0.8375, -0.3875]], dtype=torch.float64))
    assert torch.allclose(get_explainer("cam")(model, X, 0), _map(CAM_0))
    assert torch.allclose(get_explainer("cam")(model, X, 1), _map(CAM_1))
    assert torch.allclose(get_explainer("cam")(model, X, 0, create_graph=True), _map(CAM_0))


def test_gradcampp_and_gradcam(model):
    # Grad-CAM++ (closed form): CAM with max(W, 0) = [[1, 3], [0, 1]] -> class 1 is A_1 alone
    assert torch.allclose(get_explainer("gradcampp")(model, X, 0), _map(CAM_0))
    assert torch.allclose(get_explainer("gradcampp")(model, X, 1), _map([[0.05, 0.0], [0.1, 0.3]]))
    # Grad-CAM on the last feature map: relu(CAM) / (h w); CAM_1 is negative everywhere
    assert torch.allclose(get_explainer("gradcam")(model, X, 0), _map(CAM_0) / 4)
    assert torch.equal(get_explainer("gradcam")(model, X, 1), torch.zeros(1, 1, 2, 2, dtype=torch.float64))


def test_saliency_is_the_input_gradient_summed_over_channels(model):
    expected = [[0.625 - 0.75, 0.25], [0.625 - 0.75, 0.625 - 0.75]]
    for create_graph in (False, True):
        assert torch.allclose(get_explainer("saliency")(model, X, 0, create_graph=create_graph), _map(expected))
    absolute = [[0.625 + 0.75, 0.25], [0.625 + 0.75, 0.625 + 0.75]]
    assert torch.allclose(get_explainer("saliency", absolute=True)(model, X, 0), _map(absolute))


def test_integrated_gradients_and_input_x_gradient(model):
    """Along z = a x (a > 0) the ReLU pattern does not change, so the gradient is constant and IG is
    x * grad exactly, for any number of steps; its sum is Z_0(x) - Z_0(0) = 0.8375."""
    x0, x1 = X[0, 0], X[0, 1]
    expected = x0 * torch.tensor(GRAD_X0, dtype=torch.float64) + x1 * torch.tensor(GRAD_X1, dtype=torch.float64)
    assert torch.allclose(expected, torch.tensor([[0.0875, 0.1], [0.225, 0.425]], dtype=torch.float64))
    for steps in (2, 7):
        for create_graph in (False, True):
            ig = get_explainer("ig", steps=steps)(model, X, 0, create_graph=create_graph)
            assert torch.allclose(ig, expected.view(1, 1, 2, 2)), (steps, create_graph)
    assert get_explainer("ig")(model, X, 0).sum().item() == pytest.approx(0.8375)
    assert torch.allclose(get_explainer("input_x_gradient")(model, X, 0), expected.view(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"steps must be an integer in \[2, 100000\]"):
        get_explainer("ig", steps=1)


def test_gradient_of_a_discrepancy_through_the_maps(model):
    """D1 (sq_l2) between CAM_0 at x and at x' = x with x0[1, 1] raised by 0.1: at that pixel
    A_0 = 0.9, A_1 = 0.45 - 0.1 = 0.35, CAM_0 = 1.95 (was 1.7), so D1 = 0.25^2. Its gradient at x'
    is 2 * 0.25 * dCAM_0/dx' there: dCAM_0/dx0 = 1 + 3 * 0.5 = 2.5, dCAM_0/dx1 = -3; zero elsewhere."""
    x_adv = X.clone()
    x_adv[0, 0, 1, 1] += 0.1
    x_adv.requires_grad_(True)
    cam = get_explainer("cam")
    clean = cam(model, X, 0)
    d1 = discrepancy(clean, cam(model, x_adv, 0, create_graph=True), torch.tensor([0]), measure="1class",
                     distance="sq_l2")
    assert d1.item() == pytest.approx(0.0625)
    (grad,) = torch.autograd.grad(d1.sum(), x_adv)
    expected = torch.zeros_like(X)
    expected[0, 0, 1, 1], expected[0, 1, 1, 1] = 1.25, -1.5
    assert torch.allclose(grad, expected)


def test_discrepancy_measures_by_hand():
    """Three classes' maps (1, 3, 2, 2); the adversarial ones move by
    class 0: [[0.1, -0.2], [0, 0.3]] (l1 0.6, squares 0.14), class 1: [[0, 0], [0.4, 0]] (l1 0.4),
    class 2: [[0, 0], [0, -1]] (l1 1). Class 0's clean map has range 1.7 - 0.35 = 1.35."""
    clean = torch.tensor([[CAM_0, CAM_1, [[0.0, 1.0], [2.0, 3.0]]]], dtype=torch.float64)
    delta = torch.tensor([[[[0.1, -0.2], [0.0, 0.3]], [[0.0, 0.0], [0.4, 0.0]], [[0.0, 0.0], [0.0, -1.0]]]],
                         dtype=torch.float64)
    adv = clean + delta
    y, t = torch.tensor([0]), torch.tensor([2])
    assert map_distance(clean[:, :1], adv[:, :1], "l1").item() == pytest.approx(0.6)
    assert map_distance(clean[:, :1], adv[:, :1], "l2").item() == pytest.approx(0.14 ** 0.5)
    assert map_distance(clean[:, :1], adv[:, :1], "sq_l2").item() == pytest.approx(0.14)
    assert discrepancy(clean, adv, y, measure="1class").item() == pytest.approx(0.6)
    assert discrepancy(clean, adv, y, t, measure="2class").item() == pytest.approx((0.6 + 1.0) / 2)
    assert discrepancy(clean, adv, y, t, measure="allclass").item() == pytest.approx((0.6 + 0.4 + 1.0) / 3)
    assert discrepancy(clean, adv, y, measure="1class", normalization="range").item() == pytest.approx(0.6 / 1.35)
    assert discrepancy(clean, adv, y, t, measure="2class", distance="sq_l2").item() == pytest.approx((0.14 + 1.0) / 2)
    # the 2-class bound: (Z_y - Z_t) / 2 of logits [0.8375, -0.3875] is 0.6125
    assert two_class_bound(torch.tensor([[0.8375, -0.3875]]), torch.tensor([0]), torch.tensor([1])).item() \
        == pytest.approx(0.6125)


def test_rank_agreement_by_hand():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[1.0, 3.0, 2.0, 4.0]])  # one discordant pair of six: tau = (5 - 1) / 6
    assert kendall_tau(a, b).item() == pytest.approx(2 / 3)
    # top-2 of [4, 3, 2, 1] is cells {0, 1}; of [4, 1, 3, 2] cells {0, 2}: one shared of two
    assert topk_intersection(torch.tensor([[4.0, 3.0, 2.0, 1.0]]), torch.tensor([[4.0, 1.0, 3.0, 2.0]]), k=2).item() \
        == pytest.approx(0.5)
