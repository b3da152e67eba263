"""The dataset registry: each dataset's model input (channels, size), classes and display label.
A module of its own so that both the readers (``interp_core.data``) and the image intake
(``interp_core.images``) can use it without importing each other."""

from __future__ import annotations

from typing import NamedTuple

MNIST_CLASSES = [str(i) for i in range(10)]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class DatasetInfo(NamedTuple):
    """A dataset of the registry: images (channels, size, size), its classes, a display label."""

    channels: int
    size: int
    class_names: list[str]
    label: str


#: The datasets by name: the CLI's choices and the app's pickers come from here.
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(1, 28, MNIST_CLASSES, "MNIST"),
    "cifar10": DatasetInfo(3, 32, CIFAR10_CLASSES, "CIFAR-10"),
}



def eps_text(dataset: str, value: float) -> str:
    """An l-inf size (eps or step) as the paper writes it: k/255 on CIFAR-10 (k to 4 significant
    digits, so a rounded 0.0313725 is "8/255" and a step of 2.5/255 "2.5/255"), the plain number
    otherwise (0.3 -> "0.3")."""
    return f"{value * 255:.4g}/255" if dataset == "cifar10" else f"{value:g}"


__all__ = ["CIFAR10_CLASSES", "DATASETS", "MNIST_CLASSES", "DatasetInfo", "eps_text"]
