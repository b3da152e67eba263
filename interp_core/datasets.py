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

__all__ = ["CIFAR10_CLASSES", "DATASETS", "MNIST_CLASSES", "DatasetInfo"]
