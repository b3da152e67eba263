"""Which images an evaluation runs on, and which classes its targeted attacks aim for, recorded
with every result (docs/method.md#targets).

The authors pick images by seeding numpy's global generator, permuting the test set and taking a
slice of the permutation; their scripts then draw each image's attack target from the same
generator, t = (y + 1 + randint(K - 1)) % K, one draw per image in order. ``AUTHORS_SETS`` names
their three image sets; ``evaluation_set`` loads one and ``authors_set_targets`` gives its targets,
so that a point can be compared with the authors' code image by image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from interp_core.attacks import PAPER_SUBSET, authors_targets
from interp_core.attacks.uar import TEST_SIZE
from interp_core.data import ImageDataset, load_dataset, paper_subset
from interp_core.evaluate.interpretation import choose_targets


@dataclass(frozen=True)
class AuthorsSet:
    """Images ``start .. start + n - 1`` of a numpy ``RandomState(seed)`` permutation of the test set."""

    seed: int
    start: int
    n: int
    use: str


#: The authors' image sets: "paper" (PGD, AAI, the bound, IG ISA statistics, UAR), "tradeoff" (the
#: ISA trade-off figure) and "isa" (the CAM ISA statistics).
AUTHORS_SETS = {
    "paper": AuthorsSet(PAPER_SUBSET["seed"], 0, PAPER_SUBSET["n"], "PGD, AAI, the bound and UAR"),
    "tradeoff": AuthorsSet(52, 37, 5, "the ISA trade-off figure"),
    "isa": AuthorsSet(123, 0, 100, "the CAM ISA statistics (the authors pass n on their command line)"),
}
SUBSETS = (*AUTHORS_SETS, "first")
#: How targeted evaluations choose their targets: the authors' stream of the image set, a seeded
#: random wrong class (torch generator), or the clean image's runner-up class.
TARGETS = ("authors", "random", "runner-up")


def evaluation_set(dataset: str, split: str = "test", n: int | None = None, subset: str = "paper",
                   data_dir: str | Path | None = None) -> tuple[ImageDataset, str]:
    """The images of an evaluation and a description of them.

    ``subset`` in ``AUTHORS_SETS`` (default "paper"): the authors' image set, n images (default the
    set's own size) from its start in its seed's permutation of the split (the authors' images on
    the test split); on ``split="demo"`` only "paper" is available, as the first n demo images,
    which are that subset of the test set. ``subset="first"``: the first n images of the split.
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    chosen = AUTHORS_SETS.get(subset)
    if split == "demo" and subset not in ("paper", "first"):
        raise ValueError(f"the demo images hold the paper subset only; subset {subset!r} needs --split test")
    if subset == "paper" and split == "demo" and n is not None and n > chosen.n:
        raise ValueError(f"only the first {chosen.n} demo images are the paper subset; use n <= {chosen.n}")
    if subset == "first" or split == "demo":
        n = chosen.n if n is None and chosen is not None else n
        data = load_dataset(dataset, split, n=n, data_dir=data_dir)
        what = "paper seed-99 subset (demo copy)" if subset == "paper" else "first images"
        return data, f"{what}: {len(data)} of {dataset} {split} ({data.source})"
    full = load_dataset(dataset, split, data_dir=data_dir)
    n = chosen.n if n is None else n
    if not 1 <= n <= len(full) - chosen.start:
        raise ValueError(f"n must be between 1 and {len(full) - chosen.start}, got {n}")
    index = paper_subset(chosen.start + n, len(full), chosen.seed)[chosen.start:]
    return full.subset(index), (f"{subset} set: positions {chosen.start}-{chosen.start + n - 1} of the numpy "
                                f"seed-{chosen.seed} permutation of {len(full)} {dataset} {split} images "
                                f"({full.source})")


def authors_set_targets(subset: str, y: Tensor, num_classes: int) -> Tensor:
    """The authors' targets (N,) for the images y (N,) of their image set ``subset``, in the set's
    order: the draws that follow the set's permutation of the test set in their seed's stream."""
    if subset not in AUTHORS_SETS:
        raise ValueError(f"the authors' targets follow one of their image sets {tuple(AUTHORS_SETS)}, not "
                         f"{subset!r}; use targets 'random' or 'runner-up' for other images")
    return authors_targets(y, num_classes, AUTHORS_SETS[subset].seed, after_permutation=TEST_SIZE)


def resolve_targets(how: str, subset: str, model: torch.nn.Module, x: Tensor, y: Tensor, seed: int = 0) -> Tensor:
    """Targets (N,) of images x (N, C, H, W) in [0, 1] with labels y (N,): ``how`` in ``TARGETS``;
    "authors" needs the images to be the authors' set ``subset`` in its order."""
    if how not in TARGETS:
        raise ValueError(f"targets must be one of {TARGETS}, got {how!r}")
    if how != "authors":
        return choose_targets(model, x, y, how, seed)
    with torch.no_grad():
        num_classes = model(x[:1]).shape[1]
    return authors_set_targets(subset, y, num_classes)
