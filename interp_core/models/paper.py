"""Import of the authors' released networks (TensorFlow weights, MIT license).

Two inputs are accepted: the ``.npz`` conversions (``layer<i>_kernel`` / ``layer<i>_bias``, kernels
in TensorFlow layout (H, W, in, out), last kernel (1, 1, C, K) without bias = the classifier), and
the authors' original ``.pkl`` files. The pickle reader resolves only the few numpy names needed
to rebuild plain arrays; anything else (a hostile file that would run code) is refused before any
of it executes.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import numpy as np
import torch

from interp_core.datasets import DATASETS
from interp_core.io import load_arrays_pickle
from interp_core.models.architectures import ARCHITECTURES, CAMNet, SameConv2d
from interp_core.models.checkpoint import MAX_CHECKPOINT_BYTES, CheckpointError, ModelCard, check_file_size

PAPER_CREDIT = (
    "Trained and released by Boopathy, Liu, Zhang, Liu, Chen, Chang and Daniel for 'Proper Network "
    "Interpretability Helps Adversarial Robustness in Classification' (ICML 2020); MIT license, "
    "copyright 2020 the authors. Converted to PyTorch by interp_core."
)

# The authors' method tags -> this project's training-method names (docs/method.md#training).
PAPER_METHODS = {
    "normal": "normal", "adv": "pgd-at", "trades": "trades", "ig": "ig-norm", "igsum": "ig-sum-norm",
    "int": "int", "intone": "int-1class", "intadv": "int-adv", "int2": "int2", "int2adv": "int2-adv",
    "intig": "int-ig", "intigadv": "int-ig-adv", "intunlabeled": "int-unlabeled",
    "intunlabeledmax": "int-unlabeled-max",
}
#: The dataset of each tag the authors' file names start with.
_DATASETS = {record.paper_tag: name for name, record in DATASETS.items()}
_NAME = re.compile(rf"^({'|'.join(_DATASETS)})_(smallgap|pool|wresnet)_([a-z0-9]+)_(\d+)$")

def read_paper_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of an authors' ``.pkl`` file as ``layer<i>_kernel/bias`` names.

    Accepts a dict of arrays (kept as named if the names follow the ``layer<i>_...`` scheme), or a
    list/tuple of arrays (possibly nested per layer) in graph order: kernel, bias, kernel, bias, ...,
    classifier kernel. Raises CheckpointError for anything else, without executing it.
    """
    data = Path(path).read_bytes()
    try:
        obj = load_arrays_pickle(io.BytesIO(data), encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise CheckpointError(f"{path}: not a pickle of plain numpy arrays ({err})") from None
    if isinstance(obj, dict):
        if all(isinstance(k, str) and re.fullmatch(r"layer\d+_(kernel|bias)", k) for k in obj):
            arrays = dict(obj)
        else:
            arrays = _name_in_order(list(obj.values()))
    elif isinstance(obj, (list, tuple)):
        arrays = _name_in_order(_flatten(obj))
    else:
        raise CheckpointError(f"{path}: expected a dict or list of arrays, found {type(obj).__name__}")
    if not all(isinstance(v, np.ndarray) for v in arrays.values()):
        raise CheckpointError(f"{path}: contains objects that are not numpy arrays")
    return arrays


def _flatten(items) -> list:
    out = []
    for item in items:
        out.extend(_flatten(item) if isinstance(item, (list, tuple)) else [item])
    return out


def _name_in_order(arrays: list) -> dict[str, np.ndarray]:
    named, layer = {}, 0
    for a in arrays:
        if not isinstance(a, np.ndarray):
            raise CheckpointError(f"expected numpy arrays, found {type(a).__name__}")
        if a.ndim == 4:
            named[f"layer{layer}_kernel"] = a
        elif a.ndim == 1 and f"layer{layer}_kernel" in named:
            named[f"layer{layer}_bias"] = a
            layer += 1
        else:
            raise CheckpointError(f"unexpected array of shape {a.shape} in the weight list")
    return named


def _layers(arrays: dict[str, np.ndarray]) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Split named arrays into (kernel, bias) convolutions in graph order and the classifier."""
    index = sorted({int(m.group(1)) for k in arrays if (m := re.fullmatch(r"layer(\d+)_kernel", k))})
    if not index:
        raise CheckpointError("no layer<i>_kernel arrays found")
    convs = []
    for i in index[:-1]:
        if f"layer{i}_bias" not in arrays:
            raise CheckpointError(f"layer{i}_kernel has no bias")
        convs.append((arrays[f"layer{i}_kernel"], arrays[f"layer{i}_bias"]))
    head = arrays[f"layer{index[-1]}_kernel"]
    if head.ndim != 4 or head.shape[:2] != (1, 1):
        raise CheckpointError(f"last kernel has shape {head.shape}, expected a (1, 1, C, K) classifier")
    return convs, head


def infer_arch(arrays: dict[str, np.ndarray]) -> str:
    """smallgap (3 convs, first 4x4), pool (2 convs, 5x5) or wresnet (31 convs)."""
    convs, _ = _layers(arrays)
    kernel_size = convs[0][0].shape[0]
    if len(convs) == 3 and kernel_size == 4:
        return "smallgap"
    if len(convs) == 2 and kernel_size == 5:
        return "pool"
    if len(convs) == 31:
        return "wresnet"
    raise CheckpointError(f"{len(convs)} convolutions of size {kernel_size}: no known architecture")


def model_from_arrays(arrays: dict[str, np.ndarray], arch: str | None = None) -> CAMNet:
    """Build a network from TensorFlow-layout arrays; shapes are checked against the architecture."""
    arch = arch or infer_arch(arrays)
    convs, head = _layers(arrays)
    model = ARCHITECTURES[arch](in_channels=convs[0][0].shape[2], num_classes=head.shape[3])
    modules = [m for m in model.modules() if isinstance(m, SameConv2d)]
    if len(modules) != len(convs):
        raise CheckpointError(f"{arch} has {len(modules)} convolutions, the file {len(convs)}")
    with torch.no_grad():
        for module, (kernel, bias) in zip(modules, convs):
            weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32))
            if weight.shape != module.weight.shape or bias.shape != tuple(module.bias.shape):
                raise CheckpointError(f"kernel {kernel.shape} does not fit {arch} layer {tuple(module.weight.shape)}")
            module.weight.copy_(weight)
            module.bias.copy_(torch.from_numpy(bias.astype(np.float32)))
        head_weight = torch.from_numpy(np.ascontiguousarray(head[0, 0].T, dtype=np.float32))
        if head_weight.shape != model.head.weight.shape:
            raise CheckpointError(f"classifier {head.shape} does not fit {arch}")
        model.head.weight.copy_(head_weight)
    return model.eval()


def load_paper_network(path: str | Path, max_bytes: int = MAX_CHECKPOINT_BYTES) -> tuple[CAMNet, ModelCard]:
    """A paper network from its ``.npz`` or ``.pkl`` file (at most ``max_bytes``, checked before
    reading), with a card built from its file name."""
    path = Path(path)
    check_file_size(path, max_bytes, "paper network")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (ValueError, OSError, EOFError) as err:
            raise CheckpointError(f"{path}: not a readable .npz of arrays ({err})") from None
    elif path.suffix == ".pkl":
        arrays = read_paper_pickle(path)
    else:
        raise CheckpointError(f"{path}: paper networks are .npz or .pkl files")
    model = model_from_arrays(arrays)
    arch = next(name for name, cls in ARCHITECTURES.items() if type(model) is cls)
    in_channels = next(m for m in model.modules() if isinstance(m, SameConv2d)).in_channels
    return model, paper_card(path.stem, arch, in_channels, model.head.weight.shape[0])


def card_from_name(stem: str) -> ModelCard | None:
    """The card of a paper network named ``<dataset>_<arch>_<method>_<epochs>`` (e.g.
    ``mnist_smallgap_int_100``) from the name alone, without reading the file (10 classes, MNIST 1
    input channel, CIFAR-10 3); None for a name that does not follow the scheme."""
    match = _NAME.match(stem)
    if not match:
        return None
    dataset = _DATASETS[match.group(1)]
    return paper_card(stem, match.group(2), 1 if dataset == "mnist" else 3, 10)


def paper_card(stem: str, arch: str, in_channels: int, num_classes: int) -> ModelCard:
    """Card for a paper network named ``<dataset>_<arch>_<method>_<epochs>`` (other names: dataset
    from the input channels, method "unknown")."""
    match = _NAME.match(stem)
    dataset, method, hyper = ("mnist" if in_channels == 1 else "cifar10"), "unknown", {}
    if match:
        dataset = _DATASETS[match.group(1)]
        tag = match.group(3)
        gamma = re.fullmatch(r"int(0\d+)", tag)
        if gamma:  # the gamma sweep: int001 = 0.001, int015 = 0.015, int02 = 0.02
            hyper["gamma"] = float("0." + gamma.group(1))
            tag = "int"
        method = PAPER_METHODS.get(tag, tag)
        hyper["epochs"] = int(match.group(4))
        hyper["train_eps"] = DATASETS[dataset].train_eps
    return ModelCard(
        name=stem, arch=arch, dataset=dataset, method=method, in_channels=in_channels,
        num_classes=num_classes, source="paper", hyperparameters=hyper,
        description=f"The authors' released {arch} network trained with {method} on {dataset}.",
        credit=PAPER_CREDIT,
    )
