"""Datasets as float32 tensors (N, C, H, W) in [0, 1] with int64 labels and class names.

Sources, tried in this order for MNIST and CIFAR-10:
1. a data directory the user configures (``data_dir=`` / ``--data-dir`` / ``INTERP_CORE_DATA_DIR``);
2. the project's shared folder (``../shared/data``: MNIST IDX ``.gz`` files, the CIFAR-10 JPEG tar);
3. torchvision's download into the cache directory (needs internet).
In a directory, MNIST is ``MNIST/raw/*-ubyte[.gz]``; CIFAR-10 is ``cifar-10-batches-py/`` (the
official pickles, read as plain arrays), ``cifar10/{train,test}/<class>/*`` (an image-folder
tree), or ``cifar10-jpeg.tar.gz`` (unpacked once into the cache).

Splits follow the authors: ``train`` is the training set without its first 5,000 images, which
form ``heldout``; ``train_full`` is all of it; ``test`` is the test set. A small sample of real
test images ships with the package (``demo`` source) so the app and tests run without data.
Its first 200 images are the authors' seed-99 evaluation subset of the test set; offline training
uses the other 100 (``demo_train``) and keeps those 200 (``demo_heldout``) for evaluation.
"""

from __future__ import annotations

import gzip
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from interp_core import paths
from interp_core.datasets import CIFAR10_CLASSES, DATASETS
from interp_core.images import MAX_PIXELS, ImageIntakeError, read_image
from interp_core.io import atomic_write, load_arrays_pickle

# R-ImageNet super-classes: inclusive ranges of ImageNet class indices (docs/method.md#datasets).
RIMAGENET_RANGES = {
    "dog": (151, 268), "cat": (281, 285), "frog": (30, 32), "turtle": (33, 37), "bird": (80, 100),
    "primate": (365, 382), "fish": (389, 397), "crab": (118, 121), "insect": (300, 319),
}
HELDOUT = 5000
SPLITS = ("train", "heldout", "train_full", "test")
#: Parts of the demo sample: all of it, the 100 images after the paper subset, the paper subset.
DEMO_SPLITS = {"demo": slice(None), "demo_train": slice(200, None), "demo_heldout": slice(0, 200)}
DEMO_DIR = paths.PACKAGE_DIR / "demo_data"


class DatasetNotFound(FileNotFoundError):
    """No source had the dataset; the message lists where the project looked and what to do."""


@dataclass
class ImageDataset:
    """images (N, C, H, W) float32 in [0, 1]; labels (N,) int64; where it came from; notes: what
    reading an image folder did (files skipped, with the reason; conversions per file), else empty."""

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    source: str
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "ImageDataset":
        return ImageDataset(self.name, self.split, self.images[index], self.labels[index],
                            self.class_names, self.source, self.notes)


def load_dataset(name: str, split: str = "test", n: int | None = None,
                 data_dir: str | Path | None = None, download: bool = True) -> ImageDataset:
    """MNIST (``mnist``) or CIFAR-10 (``cifar10``); ``n`` keeps the first n images of the split.

    ``split="demo"`` returns the committed sample of test images (no data directory needed);
    ``demo_train`` / ``demo_heldout`` its parts (``DEMO_SPLITS``).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)} (and image folders)")
    if split in DEMO_SPLITS:
        demo = load_demo(name)
        data = ImageDataset(name, split, demo.images[DEMO_SPLITS[split]], demo.labels[DEMO_SPLITS[split]],
                            demo.class_names, demo.source)
    elif split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS + tuple(DEMO_SPLITS)}")
    else:
        images, labels, source = _find(name, "test" if split == "test" else "train", data_dir, download)
        if split == "train":
            images, labels = images[HELDOUT:], labels[HELDOUT:]
        elif split == "heldout":
            images, labels = images[:HELDOUT], labels[:HELDOUT]
        data = ImageDataset(name, split, _to_float(images), torch.from_numpy(labels.astype(np.int64)),
                            list(DATASETS[name].class_names), source)
    if n is not None:
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        data = data.subset(slice(0, n))
    return data


def _to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [0, 1]."""
    return torch.from_numpy(np.array(images, dtype=np.float32)).div_(255.0)


def _candidate_dirs(data_dir) -> list[Path]:
    dirs = [Path(data_dir).expanduser()] if data_dir else []
    if paths.data_dir():
        dirs.append(paths.data_dir())
    dirs.append(paths.shared_dir() / "data")
    return dirs


def _find(name: str, part: str, data_dir, download: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """uint8 images (N, C, H, W) and labels of the 'train' or 'test' part, plus a source string."""
    reader = _read_mnist if name == "mnist" else _read_cifar10
    looked = []
    for root in _candidate_dirs(data_dir):
        found = reader(root, part, looked)
        if found is not None:
            return found
    if download:
        found = _torchvision_download(name, part, looked)
        if found is not None:
            return found
    raise DatasetNotFound(
        f"{name} ({part}) not found. Looked in: " + "; ".join(looked) + ". Provide it with "
        "--data-dir DIR or INTERP_CORE_DATA_DIR=DIR (MNIST as DIR/MNIST/raw/*-ubyte.gz; CIFAR-10 as "
        "DIR/cifar-10-batches-py or DIR/cifar10/{train,test}/<class>/), or connect to the internet "
        "so torchvision can download it."
    )


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _read_mnist(root: Path, part: str, looked: list) -> tuple | None:
    prefix = "t10k" if part == "test" else "train"
    folder = root / "MNIST" / "raw"
    looked.append(str(folder))
    for suffix in ("", ".gz"):
        img, lab = folder / f"{prefix}-images-idx3-ubyte{suffix}", folder / f"{prefix}-labels-idx1-ubyte{suffix}"
        if img.is_file() and lab.is_file():
            return _read_idx(img)[:, None], _read_idx(lab), paths.display(folder)
    return None


def _read_cifar10(root: Path, part: str, looked: list) -> tuple | None:
    batches = root / "cifar-10-batches-py"
    looked.append(str(batches))
    if batches.is_dir():
        return (*_read_cifar_batches(batches, part), paths.display(batches))
    tree = root / "cifar10"
    looked.append(str(tree))
    if (tree / part).is_dir():
        return (*_read_image_tree(tree / part), paths.display(tree))
    archive = root / "cifar10-jpeg.tar.gz"
    looked.append(str(archive))
    if archive.is_file():
        return (*_cached_jpeg_tar(archive, part), paths.display(archive))
    return None


def _read_cifar_batches(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    names = ["test_batch"] if part == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    images, labels = [], []
    for name in names:
        with open(folder / name, "rb") as f:
            batch = load_arrays_pickle(f, encoding="bytes")  # the official pickles hold dicts, lists, arrays
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _read_image_tree(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every image of ``folder/<CIFAR-10 class>/``, sorted by class then file name, as uint8 (N, 3, 32, 32)."""
    images, labels = [], []
    for label, cls in enumerate(CIFAR10_CLASSES):
        for path in sorted((folder / cls).iterdir()):
            images.append(_uint8(read_image(path, "cifar10").x))
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _uint8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> uint8, exact for the 8-bit images of datasets stored at their size."""
    return np.rint(x.numpy() * 255.0).astype(np.uint8)


def _cached_jpeg_tar(archive: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode the JPEG tree of the archive once into ``cache/cifar10-jpeg-<part>.npz``.

    The JPEG copy lost CIFAR-10's sample order; images are ordered by class then file name and
    then shuffled with a fixed seed (0), so that the first n images of a part (the 5,000 held-out
    ones, or ``--n``) cover every class.
    """
    cache = paths.cache_dir() / f"cifar10-jpeg-{part}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as f:
            return f["images"], f["labels"]
    images, labels = [], []
    with tarfile.open(archive, "r:gz") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and m.name.startswith(f"{part}/")),
                         key=lambda m: (CIFAR10_CLASSES.index(m.name.split("/")[1]), m.name))
        for member in members:
            images.append(_uint8(read_image(tar.extractfile(member), "cifar10", name=member.name).x))
            labels.append(CIFAR10_CLASSES.index(member.name.split("/")[1]))
    images, labels = np.stack(images), np.asarray(labels, dtype=np.int64)
    order = np.random.default_rng(0).permutation(len(labels))
    images, labels = images[order], labels[order]
    with atomic_write(cache) as tmp, open(tmp, "wb") as f:
        np.savez(f, images=images, labels=labels)
    return images, labels


def _torchvision_download(name: str, part: str, looked: list) -> tuple | None:
    import torchvision

    root = paths.cache_dir() / "torchvision"
    looked.append(f"torchvision download into {root}")
    cls = torchvision.datasets.MNIST if name == "mnist" else torchvision.datasets.CIFAR10
    try:
        ds = cls(str(root), train=(part == "train"), download=True)
    except Exception:  # noqa: BLE001 - any network failure means: not available this way
        return None
    data = np.asarray(ds.data)
    images = data[:, None] if name == "mnist" else data.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64), f"torchvision ({root})"


def load_demo(name: str) -> ImageDataset:
    """The committed sample of real test images (``interp_core/demo_data/<name>_demo.npz``)."""
    path = DEMO_DIR / f"{name}_demo.npz"
    with np.load(path, allow_pickle=False) as f:
        images, labels = f["images"], f["labels"]
    return ImageDataset(name, "demo", _to_float(images), torch.from_numpy(labels.astype(np.int64)),
                        list(DATASETS[name].class_names), f"demo sample ({path.name})")


def paper_subset(n: int, total: int, seed: int = 99) -> np.ndarray:
    """The authors' evaluation subset: first n of a numpy ``seed`` permutation of ``range(total)``."""
    return np.random.RandomState(seed).permutation(total)[:n]


def load_image_folder(root: str | Path, dataset_or_shape: str | tuple[int, int, int], n: int | None = None,
                      max_pixels: int = MAX_PIXELS) -> ImageDataset:
    """Any folder with one subfolder per class, its images read by :func:`interp_core.images.read_image`
    as the input of ``dataset_or_shape`` ("mnist", "cifar10" or (C, H, W)); ``n`` keeps the first n.

    A file that is not a usable image is skipped; ``notes`` says which and why, and what was
    converted in each image ("cats/a.png: resized from 40×30 to 32×32 ...").
    """
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not classes:
        raise DatasetNotFound(f"{root}: expected one subfolder per class with images inside")
    images, labels, notes = [], [], []
    for label, cls in enumerate(classes):
        if n is not None and len(labels) >= n:
            break
        for path in sorted(p for p in (root / cls).iterdir() if p.is_file()):
            try:
                result = read_image(path, dataset_or_shape, name=f"{cls}/{path.name}", max_pixels=max_pixels)
            except ImageIntakeError as err:
                notes.append(f"skipped: {err}")
                continue
            images.append(result.x)
            labels.append(label)
            if result.notes:
                notes.append(f"{result.name}: " + "; ".join(result.notes))
            if n is not None and len(labels) >= n:
                break
    if not images:
        raise DatasetNotFound(f"{root}: no readable images in the class folders ({len(notes)} files skipped)")
    return ImageDataset(root.name, "folder", torch.stack(images), torch.tensor(labels, dtype=torch.int64), classes,
                        str(root), notes)


def load_rimagenet(imagenet_split_dir: str | Path, size: int = 224, n_per_class: int | None = None) -> ImageDataset:
    """Restricted ImageNet: 9 super-classes from an ImageNet-style folder of wnid subfolders.

    ImageNet class index i is the i-th wnid folder in sorted order; it maps to the super-class
    whose inclusive range holds i (docs/method.md#datasets). Images resized to size x size.
    """
    root = Path(imagenet_split_dir)
    wnids = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if len(wnids) != 1000:
        raise DatasetNotFound(f"{root}: expected the 1000 ImageNet class folders, found {len(wnids)}")
    classes = list(RIMAGENET_RANGES)
    images, labels = [], []
    for label, (lo, hi) in enumerate(RIMAGENET_RANGES.values()):
        files = sorted(f for i in range(lo, hi + 1) for f in (root / wnids[i]).iterdir() if f.is_file())
        for path in files[:n_per_class]:
            images.append(read_image(path, (3, size, size)).x)
            labels.append(label)
    return ImageDataset("rimagenet", root.name, torch.stack(images),
                        torch.tensor(labels, dtype=torch.int64), classes, str(root))
