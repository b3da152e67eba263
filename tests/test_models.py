import json
import pickle
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from interp_core import paths
from interp_core.interpret import get_explainer
from interp_core.models import (
    ARCHITECTURES, CAMNet, CheckpointError, ModelCard, available_models, build_model, load_checkpoint,
    load_model, read_card, save_checkpoint, smooth_copy,
)
from interp_core.models.architectures import SameConv2d
from interp_core.models.checkpoint import CARD_KEY
from interp_core.models.paper import load_paper_network, model_from_arrays, read_paper_pickle

INPUTS = {"smallgap": [(1, 28), (3, 32)], "pool": [(1, 28)], "wresnet": [(3, 32)]}


@pytest.mark.parametrize("size,kernel,stride,expected", [(5, 3, 2, (1, 1)), (4, 3, 2, (0, 1)), (28, 4, 2, (1, 1)), (7, 7, 1, (3, 3))])
def test_same_padding_puts_the_extra_row_at_the_bottom(size, kernel, stride, expected):
    torch.manual_seed(0)
    conv = SameConv2d(1, 1, kernel, stride=stride)
    x = torch.randn(1, 1, size, size)
    top, bottom = expected
    reference = F.conv2d(F.pad(x, (top, bottom, top, bottom)), conv.weight, conv.bias, stride=stride)
    assert torch.allclose(conv(x), reference)
    assert conv(x).shape[-1] == -(-size // stride)


@pytest.mark.parametrize("arch,channels,size", [(a, c, s) for a, v in INPUTS.items() for c, s in v])
def test_logits_are_the_grid_mean_of_cam(arch, channels, size):
    torch.manual_seed(0)
    model = build_model(arch, channels, 10)
    x = torch.rand(2, channels, size, size)
    assert torch.allclose(model.cam(x).mean(dim=(2, 3)), model(x), atol=1e-5)


class OneConv(CAMNet):
    """x -> 1x1 conv (2 channels) -> GAP -> linear: CAM_c = sum_k W[c,k] (w_k x + b_k)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 1)
        self.head = nn.Linear(2, 3, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -2.0]).view(2, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.5, 1.0]))
            self.head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]]))

    def features(self, x):
        return self.conv(x)


def test_cam_of_a_one_conv_network_matches_its_closed_form():
    x = torch.rand(4, 1, 5, 5)
    model = OneConv()
    a1, a2 = x + 0.5, -2 * x + 1.0
    expected = {0: a1, 1: a2, 2: 2 * a1 - a2}
    for c, cam in expected.items():
        got = get_explainer("cam")(model, x, torch.full((4,), c))
        assert torch.allclose(got, cam, atol=1e-6)
    assert torch.allclose(model(x)[:, 2], (2 * a1 - a2).mean(dim=(1, 2, 3)), atol=1e-6)


def test_checkpoint_roundtrip_keeps_weights_and_card(tmp_path):
    model = build_model("smallgap", 1, 10)
    card = ModelCard(name="t", arch="smallgap", dataset="mnist", method="normal", in_channels=1, num_classes=10,
                     hyperparameters={"eps": 0.3}, metrics={"clean_accuracy": 0.5})
    path = save_checkpoint(model, card, tmp_path / "t.safetensors")
    loaded, loaded_card = load_checkpoint(path)
    assert loaded_card == card
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded(x), model.eval()(x))
    assert not list(tmp_path.glob("*.tmp"))


def test_a_softplus_network_comes_back_softplus_and_stays_so_in_its_smooth_copy(tmp_path):
    torch.manual_seed(0)
    model = build_model("smallgap", 1, 10, activation="softplus").eval()
    card = ModelCard(name="s", arch="smallgap", dataset="mnist", method="normal", in_channels=1, num_classes=10,
                     activation="softplus")
    loaded, loaded_card = load_checkpoint(save_checkpoint(model, card, tmp_path / "s.safetensors"))
    x = torch.rand(2, 1, 28, 28)
    assert loaded_card.activation == "softplus" and torch.equal(loaded(x), model(x))
    relu = build_model("smallgap", 1, 10).eval()
    relu.load_state_dict(model.state_dict())
    assert not torch.allclose(relu(x), model(x))  # the activation is part of the network
    assert torch.equal(smooth_copy(loaded, 10.0)(x), loaded(x))  # already smooth: the trained network
    assert not torch.allclose(smooth_copy(relu, 10.0)(x), relu(x))  # a ReLU network's copy is softplus(10)
    old = {k: v for k, v in json.loads(card.to_json()).items() if k != "activation"}
    assert ModelCard.from_json(json.dumps(old)).activation == "relu"  # cards from before the field


def _saved(tmp_path):
    model = build_model("smallgap", 1, 10)
    card = ModelCard(name="t", arch="smallgap", dataset="mnist", method="normal", in_channels=1, num_classes=10)
    return save_checkpoint(model, card, tmp_path / "t.safetensors"), model, card


def test_corrupt_and_truncated_checkpoints_are_refused(tmp_path):
    path, _, _ = _saved(tmp_path)
    data = path.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00\xff" * 1000)
    for name in ("truncated", "garbage"):
        with pytest.raises(CheckpointError):
            load_checkpoint(tmp_path / f"{name}.safetensors")
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_card_that_does_not_fit_the_weights_is_refused(tmp_path):
    _, model, card = _saved(tmp_path)
    card.arch = "pool"
    path = save_checkpoint(model, card, tmp_path / "lying.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert str(err.value) == (f"{path}: weights do not fit architecture 'pool': tensor 'conv1.weight' has shape "
                              "(16, 1, 4, 4) in the file, (32, 1, 5, 5) in the architecture (in_channels=1, num_classes=10)")


def test_non_finite_weights_are_refused(tmp_path):
    _, model, card = _saved(tmp_path)
    with torch.no_grad():
        model.head.weight[0, 0] = float("nan")
    save_checkpoint(model, card, tmp_path / "nan.safetensors")
    with pytest.raises(CheckpointError, match="tensor 'head.weight' holds non-finite values"):
        load_checkpoint(tmp_path / "nan.safetensors")


def _raw_checkpoint(path, tensors: dict, card: dict | str | None) -> None:
    """A safetensors file with these tensors and card (a dict, raw text, or none), bypassing ModelCard."""
    metadata = None if card is None else {CARD_KEY: card if isinstance(card, str) else json.dumps(card)}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)


def test_each_kind_of_bad_checkpoint_has_its_one_sentence(tmp_path):
    """One message per failure class, each naming the file, one line, no PyTorch text."""
    path, model, card = _saved(tmp_path)
    weights = dict(model.state_dict())
    good = json.loads(card.to_json())
    data = path.read_bytes()
    header_length = int.from_bytes(data[:8], "little")
    cases = {
        "big": (lambda p: p.write_bytes(data), {"max_bytes": 1000}, r"the file is 0\.\d MB; a checkpoint may be at most 0\.0 MB"),
        "empty": (lambda p: p.write_bytes(b""), {}, "not a safetensors file"),
        "pickle": (lambda p: p.write_bytes(pickle.dumps(weights)), {}, "not a safetensors file"),
        "long": (lambda p: p.write_bytes((2**63).to_bytes(8, "little") + data[8:]), {}, "not a safetensors file"),
        "json": (lambda p: p.write_bytes(data[:8] + b"{" + b"x" * (header_length - 1) + data[8 + header_length:]), {},
                 "the safetensors header is invalid"),
        "cut": (lambda p: p.write_bytes(data[:-100]), {}, "the safetensors header is invalid"),
        "nocard": (lambda p: _raw_checkpoint(p, weights, None), {}, "a safetensors file without an interp_core model card"),
        "notjson": (lambda p: _raw_checkpoint(p, weights, "{arch: smallgap"), {}, r"the model card is invalid \(it is not valid JSON\)"),
        "missing": (lambda p: _raw_checkpoint(p, weights, {k: v for k, v in good.items() if k != "arch"}), {},
                    r"the model card is invalid \(field 'arch' is missing\)"),
        "type": (lambda p: _raw_checkpoint(p, weights, {**good, "in_channels": "1"}), {},
                 r"the model card is invalid \(field 'in_channels' is not an int\)"),
        "zero": (lambda p: _raw_checkpoint(p, weights, {**good, "num_classes": 0}), {},
                 r"field 'num_classes' is 0, not a positive number"),
        "dataset": (lambda p: _raw_checkpoint(p, weights, {**good, "dataset": "cifar10"}), {},
                    "the model card does not fit its dataset: cifar10 models take 3 input channel"),
        "arch": (lambda p: _raw_checkpoint(p, weights, {**good, "arch": "resnet50"}), {}, "unknown architecture 'resnet50'"),
        "activation": (lambda p: _raw_checkpoint(p, weights, {**good, "activation": "tanh"}), {},
                       "the model card names an unknown activation 'tanh'"),
        "lacks": (lambda p: _raw_checkpoint(p, {k: v for k, v in weights.items() if k != "head.weight"}, good), {},
                  "weights do not fit architecture 'smallgap': tensor 'head.weight' is missing"),
        "extra": (lambda p: _raw_checkpoint(p, {**weights, "spare": torch.zeros(3)}, good), {},
                  "weights do not fit architecture 'smallgap': the file has a tensor 'spare' that the architecture does not have"),
        "ints": (lambda p: _raw_checkpoint(p, {**weights, "conv1.bias": torch.zeros(16, dtype=torch.int64)}, good), {},
                 "tensor 'conv1.bias' is stored as I64, not as floating point"),
        "classes": (lambda p: _raw_checkpoint(p, weights, {**good, "dataset": "svhn", "num_classes": 7}), {},
                    r"tensor 'head.weight' has shape \(10, 100\) in the file, \(7, 100\) in the architecture"),
    }
    for name, (write, options, message) in cases.items():
        file = tmp_path / f"{name}.safetensors"
        write(file)
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(file, **options)
        text = str(err.value)
        assert text.startswith(f"{file}: ") and re.search(message, text), (name, text)
        assert "\n" not in text and "state_dict" not in text, (name, text)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        read_card(tmp_path / "empty.safetensors")


def _tf_arrays(model: CAMNet) -> dict:
    """The inverse of the import: a model's weights in the authors' TensorFlow layout."""
    arrays, convs = {}, [m for m in model.modules() if isinstance(m, SameConv2d)]
    for i, conv in enumerate(convs):
        arrays[f"layer{i}_kernel"] = conv.weight.detach().numpy().transpose(2, 3, 1, 0)
        arrays[f"layer{i}_bias"] = conv.bias.detach().numpy()
    arrays[f"layer{len(convs)}_kernel"] = model.head.weight.detach().numpy().T[None, None]
    return arrays


@pytest.mark.parametrize("arch,channels", [("smallgap", 1), ("pool", 1), ("wresnet", 3)])
def test_import_from_tensorflow_layout_reproduces_the_network(arch, channels, tmp_path):
    torch.manual_seed(1)
    model = build_model(arch, channels, 10).eval()
    arrays = _tf_arrays(model)
    np.savez(tmp_path / f"x_{arch}.npz", **arrays)
    with open(tmp_path / f"x_{arch}.pkl", "wb") as f:
        pickle.dump([[arrays[k] for k in sorted(arrays, key=lambda k: (int(k[5:].split("_")[0]), k.endswith("bias")))]], f)
    size = 28 if channels == 1 else 32
    x = torch.rand(2, channels, size, size)
    for suffix in ("npz", "pkl"):
        imported, card = load_paper_network(tmp_path / f"x_{arch}.{suffix}")
        assert card.arch == arch
        assert torch.allclose(imported(x), model(x), atol=1e-5)


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch EXPLOITED_MARKER",))


def test_hostile_pickle_is_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "mnist_smallgap_normal_100.pkl"
    path.write_bytes(pickle.dumps({"layer0_kernel": _Exploit()}))
    with pytest.raises(CheckpointError, match="refused"):
        read_paper_pickle(path)
    assert not (tmp_path / "EXPLOITED_MARKER").exists()
    path.write_bytes(pickle.dumps([np.zeros((4, 4, 1, 16), np.float32), {"a": set()}]))
    with pytest.raises(CheckpointError):
        load_paper_network(path)


class _Opener:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("builtins", "getattr"), ("os", "system"),
                                         ("subprocess", "Popen"), ("numpy", "load"), ("pickle", "loads"),
                                         ("numpy.lib.npyio", "NpzFile"), ("collections", "defaultdict")])
def test_paper_pickles_may_name_only_the_numpy_reconstruction_globals(module, name, tmp_path):
    path = tmp_path / "mnist_smallgap_normal_100.pkl"
    path.write_bytes(b"c" + module.encode() + b"\n" + name.encode() + b"\n(S'x'\ntR.")  # protocol 0: module.name('x')
    with pytest.raises(CheckpointError, match=f"refused: the pickle asks for {module}.{name}"):
        load_paper_network(path)


def test_a_pickle_that_would_create_a_file_is_refused_and_creates_none(tmp_path):
    target = tmp_path / "created-by-the-pickle.txt"
    path = tmp_path / "mnist_smallgap_normal_100.pkl"
    for protocol in (0, 2, 5):
        path.write_bytes(pickle.dumps([_Opener(str(target))], protocol=protocol))
        with pytest.raises(CheckpointError, match="refused: the pickle asks for (io|builtins).open"):
            load_paper_network(path)
        assert not target.exists()
    with pytest.raises(CheckpointError, match="a paper network may be at most"):
        load_paper_network(path, max_bytes=10)


def test_wrong_shapes_in_paper_arrays_are_refused():
    arrays = _tf_arrays(build_model("smallgap", 1, 10))
    arrays["layer1_kernel"] = arrays["layer1_kernel"][:, :, :8]
    with pytest.raises(CheckpointError):
        model_from_arrays(arrays)


def test_shipped_checkpoints_load_without_the_shared_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("INTERP_CORE_SHARED_DIR", str(tmp_path / "absent"))
    entries = {e.name: e for e in available_models()}
    for name in ("mnist-smallgap-normal-paper", "mnist-smallgap-pgd-at-paper", "mnist-smallgap-trades-paper",
                 "mnist-smallgap-int-paper", "mnist-smallgap-int-1class-paper", "mnist-smallgap-int2-paper",
                 "cifar10-smallgap-normal-paper", "cifar10-smallgap-pgd-at-paper", "cifar10-smallgap-int-paper"):
        card = entries[name].card
        assert card.source == "paper" and "MIT" in card.credit and card.metrics["clean_accuracy"] > 0.5
        model, _ = load_model(name)
        assert isinstance(model, ARCHITECTURES[card.arch])
    with pytest.raises(CheckpointError, match="no model named"):
        load_model("no-such-model")


def test_paper_networks_are_listed_once(paper_networks_dir):
    names = [e.name for e in available_models()]
    assert "mnist-smallgap-normal-paper" in names and "mnist_smallgap_normal_100" not in names
    assert "mnist_pool_normal_100" in names
    assert read_card(paths.checkpoints_dir() / "mnist-smallgap-int-paper.safetensors").converted_from == "mnist_smallgap_int_100"


def test_model_listing_is_cached_until_a_folder_changes(monkeypatch, tmp_path):
    """A new checkpoint in a run subfolder appears at the next lookup; without changes the listing
    is reused (no file is read again)."""
    import interp_core.models.registry as registry

    monkeypatch.setenv("INTERP_CORE_RUNS_DIR", str(tmp_path / "runs"))
    (tmp_path / "runs" / "job1").mkdir(parents=True)
    before = {e.name for e in available_models()}
    assert "fresh-run" not in before
    reads = []
    monkeypatch.setattr(registry, "read_card", lambda path: reads.append(path) or read_card(path))
    assert {e.name for e in available_models()} == before and not reads
    card = ModelCard(name="fresh-run", arch="smallgap", dataset="mnist", method="normal", in_channels=1,
                     num_classes=10)
    path = save_checkpoint(build_model("smallgap", 1, 10), card, tmp_path / "runs" / "job1" / "fresh.safetensors")
    entries = {e.name: e for e in available_models("mnist")}
    assert entries["fresh-run"].path == path and reads
    model, loaded = load_model("fresh-run")
    assert loaded == card and isinstance(model, ARCHITECTURES["smallgap"])
    path.unlink()
    assert "fresh-run" not in {e.name for e in available_models()}


def test_paper_networks_are_listed_from_their_names_without_reading_them(monkeypatch, tmp_path):
    """An .npz named in the authors' scheme is listed from its name (its bytes are not even valid);
    loading it reads it. Its card from the name equals the card from the weights."""
    from interp_core.models.paper import card_from_name

    folder = tmp_path / "paper-networks"
    folder.mkdir()
    monkeypatch.setenv("INTERP_CORE_PAPER_NETWORKS", str(folder))
    (folder / "cifar_wresnet_igsum_200.npz").write_bytes(b"not read when listing")
    np.savez(folder / "mnist_pool_int015_100.npz", **_tf_arrays(build_model("pool", 1, 10)))
    entries = {e.name: e for e in available_models()}
    card = entries["cifar_wresnet_igsum_200"].card
    assert (card.dataset, card.arch, card.method, card.in_channels, card.source) == ("cifar10", "wresnet",
                                                                                    "ig-sum-norm", 3, "paper")
    assert entries["mnist_pool_int015_100"].card == card_from_name("mnist_pool_int015_100")
    _, loaded = load_model("mnist_pool_int015_100")
    assert loaded == entries["mnist_pool_int015_100"].card and loaded.hyperparameters["gamma"] == 0.015
    with pytest.raises(CheckpointError):
        load_model("cifar_wresnet_igsum_200")


def test_listed_paper_cards_match_the_loaded_networks(paper_networks_dir):
    from interp_core.models.paper import card_from_name

    for path in sorted(paper_networks_dir.glob("*.npz"))[::7]:
        assert card_from_name(path.stem) == load_paper_network(path)[1]
