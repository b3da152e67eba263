"""The dataset registry: one record per dataset holding everything the layers know about it: the
model input (channels, size), classes and display label; how its eps are written; the authors'
eps grid, training eps and AAI eps; the unforeseen attacks' budgets; the demo image the app opens
on; the tag of the authors' network files. A leaf module, so that the readers (``interp_core.data``),
the image intake, the attacks, the evaluations, the services and the app all read the same record."""

from __future__ import annotations

from typing import NamedTuple

MNIST_CLASSES = [str(i) for i in range(10)]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class DatasetInfo(NamedTuple):
    """A dataset of the registry.

    channels, size: images are (channels, size, size) in [0, 1]; class_names, label: for display.
    eps_scale: l-inf sizes are written as k/eps_scale (CIFAR-10: k/255; MNIST: the plain number).
    paper_eps: the authors' robustness grid (docs/method.md#pgd), 0 first; train_eps: their
    training eps, the app's default attack eps. aai_eps: the AAI eps of the reproduced tables; the
    evaluation of a trained model uses its smallest and largest (``evaluation_aai_eps``).
    uar_budgets: each unforeseen attack's distortion, on the reference's scale (docs/method.md#uar:
    CIFAR-10 the authors'; MNIST the project's, within ``interp_core.attacks.uar.MNIST_UAR_LINF``).
    default_image: the demo image the app opens on: one every shipped model classifies right, so the
    first attack shown starts from a right prediction (CIFAR-10 #0, a cat, is a dog to five of the
    eight CIFAR-10 models shipped when this was chosen; tests/test_explore.py checks).
    paper_tag: the dataset's name in the authors' network files (``cifar_smallgap_int_200``).
    """

    channels: int
    size: int
    class_names: list[str]
    label: str
    eps_scale: int
    paper_eps: tuple[float, ...]
    train_eps: float
    aai_eps: tuple[float, ...]
    uar_budgets: dict[str, float]
    default_image: int
    paper_tag: str

    def evaluation_aai_eps(self) -> tuple[float, float]:
        """The two AAI eps of a trained model's evaluation: the smallest and largest of ``aai_eps``."""
        return self.aai_eps[0], self.aai_eps[-1]


#: The datasets by name: the CLI's choices and the app's pickers come from here.
DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        1, 28, MNIST_CLASSES, "MNIST", eps_scale=1, paper_eps=(0.0, 0.05, 0.1, 0.2, 0.3, 0.35, 0.4), train_eps=0.3,
        aai_eps=(0.1, 0.2, 0.3),
        # Chosen so that no pixel moves by more than MNIST_UAR_LINF = 0.4 (CIFAR's budgets destroy a digit);
        # measured on 16 demo images against the shipped normal, PGD-AT, Int and Int2 networks (200 steps): the
        # largest change is fog 0.33, gabor 0.31, snow 0.27 (0.25 of it the fixed discolouring), JPEG 0.22 / 0.25 /
        # 0.34.
        uar_budgets={"fog": 128.0, "gabor": 80.0, "snow": 0.025, "jpeg-linf": 0.25, "jpeg-l2": 2.0, "jpeg-l1": 8.0},
        default_image=0, paper_tag="mnist"),
    "cifar10": DatasetInfo(
        3, 32, CIFAR10_CLASSES, "CIFAR-10", eps_scale=255, paper_eps=tuple(v / 255 for v in (0, 2, 4, 6, 8, 9, 10)),
        train_eps=8 / 255, aai_eps=(2 / 255, 4 / 255, 8 / 255),
        uar_budgets={"fog": 2048.0, "gabor": 400.0, "snow": 2.0, "jpeg-linf": 0.25, "jpeg-l2": 8.0, "jpeg-l1": 256.0},
        default_image=2, paper_tag="cifar"),
}


def eps_text(dataset: str, value: float) -> str:
    """An l-inf size (eps or step) as the paper writes it: k/255 on CIFAR-10 (k to 4 significant
    digits, so a rounded 0.0313725 is "8/255" and a step of 2.5/255 "2.5/255"), the plain number
    otherwise (0.3 -> "0.3")."""
    scale = DATASETS[dataset].eps_scale
    return f"{value * scale:.4g}/{scale}" if scale != 1 else f"{value:g}"


__all__ = ["CIFAR10_CLASSES", "DATASETS", "MNIST_CLASSES", "DatasetInfo", "eps_text"]
