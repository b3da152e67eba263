import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIG
from captum.attr import LayerGradCam, NoiseTunnel
from captum.attr import Saliency as CaptumSaliency

from interp_core.interpret import (
    AUTHORS_IG_BETA, EXPLAINERS, IG_FORMS, GradCAM, SmoothGrad, explain_all_classes, explain_classes, get_explainer,
    upsample_to_input,
)
from interp_core.models import smooth_copy


@pytest.fixture
def batch(mnist_demo):
    return mnist_demo.images[:4], mnist_demo.labels[:4]


def _options(name):
    return {"steps": 16} if name == "ig" else {"samples": 4} if name == "smoothgrad" else {}


@pytest.mark.parametrize("name", sorted(EXPLAINERS))
def test_differentiable_form_equals_the_captum_form(name, mnist_normal, batch):
    x, y = batch
    explainer = get_explainer(name, **_options(name))
    plain = explainer(mnist_normal, x, y)
    graph = explainer(mnist_normal, x, y, create_graph=True)
    assert plain.shape == graph.shape and plain.shape[:2] == (4, 1)
    assert not plain.requires_grad
    assert torch.allclose(plain, graph, atol=1e-4, rtol=1e-4)
    assert plain.abs().sum() > 0


def test_gradcam_on_the_last_layer_is_relu_cam_over_grid_size(mnist_normal, batch):
    x, y = batch
    cam = get_explainer("cam")(mnist_normal, x, y)
    assert torch.allclose(get_explainer("gradcam")(mnist_normal, x, y), cam.clamp(min=0) / 49, atol=1e-5)
    captum = LayerGradCam(mnist_normal, mnist_normal.conv3).attribute(x, target=y, relu_attributions=True)
    assert torch.allclose(get_explainer("gradcam")(mnist_normal, x, y), captum, atol=1e-5)


def test_gradcam_on_an_inner_layer_matches_captum_and_leaves_no_hook(mnist_normal, batch):
    x, y = batch
    ours = GradCAM("conv2")(mnist_normal, x, y, create_graph=True)
    captum = LayerGradCam(mnist_normal, mnist_normal.conv2).attribute(x, target=y, relu_attributions=True)
    assert torch.allclose(ours, captum, atol=1e-5)
    assert all(not m._forward_hooks for m in mnist_normal.modules())  # hooks go on a private copy
    with pytest.raises(ValueError, match=r"target classes must be in \[0, 9\], got \[99\]"):
        GradCAM("conv2")(mnist_normal, x, torch.full((4,), 99), create_graph=True)
    with pytest.raises(ValueError, match=r"target classes must be in \[0, 9\], got \[-1\]"):
        get_explainer("saliency")(mnist_normal, x, -1)


def test_gradcampp_is_cam_with_positive_head_weights(mnist_normal, batch):
    x, y = batch
    features = mnist_normal.features(x)
    expected = torch.einsum("c,nchw->nhw", mnist_normal.head.weight[y[0]].clamp(min=0), features[:1])
    assert torch.allclose(get_explainer("gradcampp")(mnist_normal, x, y)[0, 0], expected[0], atol=1e-4)


def test_ig_is_the_right_riemann_sum_and_complete(mnist_normal, batch):
    x, y = batch
    ours = get_explainer("ig", steps=200)(mnist_normal, x, y, create_graph=True)
    captum = CaptumIG(mnist_normal).attribute(x, target=y, n_steps=200, method="riemann_right").sum(1, keepdim=True)
    assert torch.allclose(ours, captum, atol=1e-4)
    logits_gap = mnist_normal(x).gather(1, y[:, None]) - mnist_normal(torch.zeros_like(x)).gather(1, y[:, None])
    assert torch.allclose(ours.sum(dim=(1, 2, 3)), logits_gap.squeeze(1).detach(), rtol=0.05, atol=0.5)


@pytest.mark.parametrize("form", IG_FORMS)
def test_batched_ig_of_several_classes_equals_one_class_and_one_point_at_a_time(tiny_cifar_model, form):
    """explain_classes runs IG's classes through shared forward passes of batch_steps points (5: the
    last pass holds 2 of the 12); the maps equal one class and one point per pass, and Captum's."""
    model = tiny_cifar_model.requires_grad_(False)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([[0, 4, 9], [1, 1, 2], [7, 3, 0]])
    batched = explain_classes(get_explainer("ig", steps=12, batch_steps=5, form=form), model, x, classes)
    one_at_a_time = get_explainer("ig", steps=12, batch_steps=1, form=form)
    unbatched = torch.cat([one_at_a_time(model, x, classes[:, j]) for j in range(3)], dim=1)
    reference = smooth_copy(model, AUTHORS_IG_BETA) if form == "authors" else model
    captum = torch.stack([CaptumIG(reference).attribute(x, target=classes[:, j], n_steps=12, method="riemann_right")
                          for j in range(3)], dim=1)
    captum = captum if form == "authors" else captum.sum(dim=2)
    assert batched.shape == unbatched.shape == captum.shape == ((3, 3, 3, 32, 32) if form == "authors" else (3, 3, 32, 32))
    torch.testing.assert_close(batched, unbatched, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batched, captum, rtol=1e-5, atol=1e-6)
    graph = explain_classes(get_explainer("ig", steps=12, batch_steps=5, form=form), model, x, classes, create_graph=True)
    torch.testing.assert_close(graph.detach(), batched, rtol=1e-5, atol=1e-6)
    assert batched.abs().sum() > 0


def test_saliency_matches_captum(mnist_normal, batch):
    x, y = batch
    ours = get_explainer("saliency", absolute=True)(mnist_normal, x, y, create_graph=True)
    assert torch.allclose(ours, CaptumSaliency(mnist_normal).attribute(x, target=y, abs=True).sum(1, keepdim=True), atol=1e-5)


def test_smoothgrad_is_seeded_and_agrees_with_captum_on_average(mnist_normal, batch):
    x, y = batch
    a = SmoothGrad(samples=64, noise=0.05)(mnist_normal, x, y)
    assert torch.equal(a, SmoothGrad(samples=64, noise=0.05)(mnist_normal, x, y))
    torch.manual_seed(0)
    captum = NoiseTunnel(CaptumSaliency(mnist_normal)).attribute(
        x, target=y, nt_type="smoothgrad", nt_samples=64, stdevs=0.05, abs=False).sum(1, keepdim=True)
    cosine = torch.nn.functional.cosine_similarity(a.flatten(1), captum.flatten(1))
    assert (cosine > 0.9).all()


def test_maps_are_differentiable_for_attacks(mnist_normal, batch):
    x, y = batch
    x = x.clone().requires_grad_(True)
    smooth = smooth_copy(mnist_normal)
    for name, model in (("cam", mnist_normal), ("gradcampp", mnist_normal), ("ig", smooth), ("saliency", smooth)):
        maps = get_explainer(name, **_options(name))(model, x, y, create_graph=True)
        (grad,) = torch.autograd.grad(maps.abs().sum(), x)
        assert grad.abs().sum() > 0, name


def test_all_class_maps_and_display_upsampling(mnist_normal, batch):
    x, _ = batch
    maps = explain_all_classes(get_explainer("cam"), mnist_normal, x, 10)
    assert maps.shape == (4, 10, 7, 7)
    assert torch.allclose(maps.mean(dim=(2, 3)), mnist_normal(x).detach(), atol=1e-4)
    assert upsample_to_input(maps, (28, 28)).shape == (4, 10, 28, 28)


def test_bad_inputs_give_clear_errors(mnist_normal):
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        get_explainer("cam")(mnist_normal, torch.rand(1, 28, 28), torch.tensor([0]))
    with pytest.raises(ValueError, match="target has"):
        get_explainer("cam")(mnist_normal, torch.rand(3, 1, 28, 28), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="unknown explainer"):
        get_explainer("lime")


def _hooks(model: torch.nn.Module) -> int:
    """Hooks of every kind on the model's modules, plus torch's global module hooks."""
    from torch.nn.modules import module as torch_module

    own = sum(len(getattr(m, name)) for m in model.modules() for name in
              ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"))
    return own + len(torch_module._global_forward_hooks) + len(torch_module._global_backward_hooks)


@pytest.mark.parametrize("name,options", [(n, {}) for n in EXPLAINERS] + [("gradcam", {"layer": "conv1"})])
def test_an_explainer_that_raises_mid_call_leaves_no_hook_on_the_shared_model(tiny_cifar_model, name, options):
    """The app's cached models are shared by sessions: an explainer must leave nothing on them,
    even when the model fails half way through its forward pass."""
    model = tiny_cifar_model.requires_grad_(False)
    convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0] == "conv1" and len(convs) > 1

    def broken(*_args):
        raise RuntimeError("injected failure")

    model.get_submodule(convs[-1]).forward = broken
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(RuntimeError, match="injected failure"):
        get_explainer(name, **options)(model, x, torch.tensor([1, 2]))
    assert _hooks(model) == 0
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_explainers_on_one_model_from_several_threads_match_serial_runs(tiny_cifar_model):
    """Four threads explain with one shared model at once: each gets the maps of a serial run."""
    from concurrent.futures import ThreadPoolExecutor

    model = tiny_cifar_model.requires_grad_(False)
    x, target = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 4, 9])
    jobs = [(n, o) for n, o in (("cam", {}), ("gradcampp", {}), ("saliency", {}), ("ig", {"steps": 8}),
                                ("gradcam", {"layer": "conv1"}), ("smoothgrad", {"samples": 3}))]
    serial = [get_explainer(n, **o)(model, x, target) for n, o in jobs]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda job: get_explainer(job[0], **job[1])(model, x, target), jobs * 3))
    for i, maps in enumerate(threaded):
        torch.testing.assert_close(maps, serial[i % len(jobs)])
    assert _hooks(model) == 0
