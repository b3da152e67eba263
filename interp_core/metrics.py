"""Interpretation discrepancies and agreement measures (docs/method.md#discrepancies), as pure functions that
return per-example tensors (N,); callers reduce.

Maps are raw (unnormalized) on their native grid unless a function says otherwise. The one
normalization the paper reports, the clean map's range, is applied by ``normalize_by_range``;
every number the UI shows names the normalization it used (``"raw"`` or ``"range"``).
"""

from __future__ import annotations

import torch

from interp_core.models import eval_mode

#: Distances between two maps: l1, l2 (the root of the sum of squares, as the authors report) and
#: sq_l2 (the sum of squares, the smooth form used as an attack loss).
DISTANCES = ("l1", "l2", "sq_l2")
MEASURES = ("1class", "2class", "allclass")
NORMALIZATIONS = ("raw", "range")


def map_distance(a: torch.Tensor, b: torch.Tensor, distance: str = "l1") -> torch.Tensor:
    """||a - b||_1, ||a - b||_2 or ||a - b||_2^2 (``distance`` "l1", "l2", "sq_l2") over all but the
    batch dimension: (N, ...) -> (N,)."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    diff = (a - b).flatten(1)
    if distance == "l1":
        return diff.abs().sum(1)
    squares = diff.pow(2).sum(1)
    return squares.sqrt() if distance == "l2" else squares


def map_range(maps: torch.Tensor) -> torch.Tensor:
    """max - min of each map: (N, ...) -> (N,)."""
    flat = maps.flatten(1)
    return flat.amax(1) - flat.amin(1)


def normalize_by_range(distance: torch.Tensor, clean_map: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """The paper's range normalization: distance / (max I(x) - min I(x)) of the clean map."""
    return distance / map_range(clean_map).clamp_min(eps)


def class_discrepancy(clean: torch.Tensor, adv: torch.Tensor, distance: str = "l1",
                      normalization: str = "raw") -> torch.Tensor:
    """Discrepancy of one class's maps: clean, adv (N, 1, h, w) or (N, h, w) -> (N,)."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    d = map_distance(clean, adv, distance)
    return normalize_by_range(d, clean) if normalization == "range" else d


def discrepancy(clean: torch.Tensor, adv: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None,
                measure: str = "2class", distance: str = "l1", normalization: str = "raw") -> torch.Tensor:
    """1-class, 2-class or all-class discrepancy between per-class maps.

    clean, adv: (N, K, h, w) maps of every class for the clean and the perturbed images (or
    (N, K, C, H, W): a map with several channels, such as IG in the authors' form, counts as one);
    y: (N,) true classes; target: (N,) attack targets (needed for "2class").
    - 1class:  D1 = d_y
    - 2class:  D2 = (d_y + d_t) / 2
    - allclass: (1/K) sum_c d_c
    where d_c is ``class_discrepancy`` of class c (``distance`` l1, l2 or sq_l2; raw or range-normalized).
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    if clean.shape != adv.shape or clean.dim() < 4:
        raise ValueError(f"clean and adv must both be (N, K, h, w) (or (N, K, C, H, W)); got {tuple(clean.shape)}, "
                         f"{tuple(adv.shape)}")

    def d(cls: torch.Tensor) -> torch.Tensor:
        index = cls.view(-1, *[1] * (clean.dim() - 1)).expand(-1, 1, *clean.shape[2:])
        return class_discrepancy(clean.gather(1, index), adv.gather(1, index), distance, normalization)

    if measure == "1class":
        return d(y)
    if measure == "2class":
        if target is None:
            raise ValueError("the 2-class discrepancy needs the attack target")
        return 0.5 * (d(y) + d(target))
    n, k = clean.shape[:2]
    per_class = torch.stack([d(torch.full((n,), c, device=clean.device, dtype=torch.long)) for c in range(k)], 1)
    return per_class.mean(1)


def two_class_bound(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The floor of section 4: (Z_y(x) - Z_t(x)) / 2, (N,). Any x' on which t beats y has
    D2(CAM / (h w)) >= this value."""
    return 0.5 * (logits.gather(1, y[:, None]) - logits.gather(1, target[:, None])).squeeze(1)


def kendall_tau(a: torch.Tensor, b: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Kendall's tau-b (equal to scipy.stats.kendalltau) between flattened maps: (N, ...) -> (N,).

    tau_b = sum_{i<j} s_a s_b / sqrt(sum |s_a| * sum |s_b|) with s = sign of pairwise differences;
    NaN where a map is constant (as scipy). O(n^2) pairs per map, computed in row chunks.
    """
    a, b = a.flatten(1).double(), b.flatten(1).double()
    concordance = torch.zeros(a.shape[0], dtype=torch.float64, device=a.device)
    pairs_a, pairs_b = torch.zeros_like(concordance), torch.zeros_like(concordance)
    for start in range(0, a.shape[1], chunk):
        sa = torch.sign(a[:, start:start + chunk, None] - a[:, None, :])
        sb = torch.sign(b[:, start:start + chunk, None] - b[:, None, :])
        concordance += (sa * sb).sum((1, 2))
        pairs_a += sa.abs().sum((1, 2))
        pairs_b += sb.abs().sum((1, 2))
    return (concordance / torch.sqrt(pairs_a * pairs_b)).float()


def topk_intersection(a: torch.Tensor, b: torch.Tensor, k: int = 8) -> torch.Tensor:
    """Share of the k largest entries of map a that are also among the k largest of map b: (N,)."""
    a, b = a.flatten(1), b.flatten(1)
    if not 1 <= k <= a.shape[1]:
        raise ValueError(f"k must be between 1 and {a.shape[1]}, got {k}")
    top_a = torch.zeros_like(a, dtype=torch.bool).scatter_(1, a.topk(k, dim=1).indices, True)
    top_b = torch.zeros_like(b, dtype=torch.bool).scatter_(1, b.topk(k, dim=1).indices, True)
    return (top_a & top_b).sum(1).float() / k


def best_other_class(logits: torch.Tensor, cls: torch.Tensor) -> torch.return_types.max:
    """The highest-scoring class other than ``cls`` per example: logits (N, K), cls (N,) ->
    ``(values, indices)``, each (N,). With cls = y it is the runner-up (best wrong) class; the C&W
    margin is ``values - Z_cls``."""
    return logits.scatter(1, cls[:, None], float("-inf")).max(1)


def correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example correctness (N,) bool; accuracy is its mean."""
    return logits.argmax(1) == y


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> float:
    """Clean accuracy in [0, 1] of ``model`` on x (N, C, H, W) in [0, 1] with labels y (N,)."""
    with eval_mode(model):
        hits = sum(correct(model(x[i:i + batch_size]), y[i:i + batch_size]).sum().item()
                   for i in range(0, len(y), batch_size))
    return hits / max(len(y), 1)
