"""Which images an evaluation runs on, recorded with every result."""

from __future__ import annotations

from pathlib import Path

from interp_core.attacks import PAPER_SUBSET
from interp_core.data import ImageDataset, load_dataset, paper_subset

SUBSETS = ("paper", "first")


def evaluation_set(dataset: str, split: str = "test", n: int | None = None, subset: str = "paper",
                   data_dir: str | Path | None = None) -> tuple[ImageDataset, str]:
    """The images of an evaluation and a description of them.

    ``subset="paper"``: the authors' subset (PAPER.md section 5), the first n (default 200) of a
    numpy seed-99 permutation of the split; on ``split="demo"`` the first n demo images, which are
    that subset of the test set. ``subset="first"``: the first n images of the split.
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    if subset == "paper" and split == "demo" and n is not None and n > PAPER_SUBSET["n"]:
        raise ValueError(f"only the first {PAPER_SUBSET['n']} demo images are the paper subset; use n <= 200")
    if subset == "first" or split == "demo":
        n = PAPER_SUBSET["n"] if n is None and subset == "paper" else n
        data = load_dataset(dataset, split, n=n, data_dir=data_dir)
        what = "paper seed-99 subset (demo copy)" if subset == "paper" else "first images"
        return data, f"{what}: {len(data)} of {dataset} {split} ({data.source})"
    full = load_dataset(dataset, split, data_dir=data_dir)
    n = PAPER_SUBSET["n"] if n is None else n
    if not 1 <= n <= len(full):
        raise ValueError(f"n must be between 1 and {len(full)}, got {n}")
    index = paper_subset(n, len(full), PAPER_SUBSET["seed"])
    return full.subset(index), (f"paper subset: first {n} of numpy seed-{PAPER_SUBSET['seed']} permutation of "
                                f"{len(full)} {dataset} {split} images ({full.source})")
