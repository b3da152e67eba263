"""The one range check of numeric parameters (attacks, explainers, evaluation): ``check_range``
raises a ValueError that names the parameter, its allowed range and the value given. ``BOUNDS``
holds the ranges of the parameters that several modules (and the app's widgets) share."""

from __future__ import annotations

import math
import numbers

import torch

#: name -> (low, high), inclusive: the allowed range of a shared numeric parameter. An l-inf eps is
#: at most 1 (the whole [0, 1] box); an l2 eps is unbounded; an unforeseen attack's distortion is
#: on its own scale (attacks.UAR_ATTACKS).
BOUNDS: dict[str, tuple[float, float]] = {
    "eps": (0.0, math.inf), "step_size": (0.0, math.inf), "steps": (0, 100_000), "restarts": (1, 1000),
    "kappa": (0.0, math.inf), "gamma": (0.0, math.inf), "k": (1, 100_000), "rounds": (1, 100),
    "seed": (0, 2**63 - 1), "softsign_scale": (0.0, math.inf), "step_scale": (0.001, 1.0),
    "samples": (1, 100_000), "noise": (0.0, math.inf), "batch_size": (1, 1_000_000), "n": (1, 10_000_000),
    "distortion": (0.0, math.inf),
}

#: Said after a refused l-inf eps: the usual slip is a radius on the 0-255 scale.
LINF_HINT = " (an l-inf radius above 1 covers the whole [0, 1] box; is it on the 0-255 scale?)"


def check_range(name: str, value, low: float | None = None, high: float | None = None, *,
                integer: bool = False, hint: str = "") -> None:
    """Raise ValueError unless ``value`` is a finite number (an int when ``integer``; a float 1-D
    tensor (N,) of them is also accepted when not ``integer``) in [low, high]. Without low/high the
    range is ``BOUNDS[name]``. The message names ``name``, the range and the value, then ``hint``."""
    low, high = (BOUNDS[name][0] if low is None else low), (BOUNDS[name][1] if high is None else high)
    kind = "an integer" if integer else "finite"
    if isinstance(value, torch.Tensor) and not integer:
        if value.dim() != 1 or not value.is_floating_point():
            raise ValueError(f"a per-example {name} must be a float tensor of shape (N,), got {tuple(value.shape)}")
        ok = bool(torch.isfinite(value).all() and (value >= low).all() and (value <= high).all())
        shown = (f"tensor of {value.numel()} values in [{value.min().item():.4g}, {value.max().item():.4g}]"
                 if value.numel() else "an empty tensor")
    else:
        number = isinstance(value, numbers.Integral) if integer else isinstance(value, numbers.Real)
        ok = number and not isinstance(value, bool) and math.isfinite(value) and low <= value <= high
        shown = repr(value)
    if not ok:
        raise ValueError(f"{name} must be {kind} in [{_show(low)}, {_show(high)}], got {shown}{hint}")


def _show(bound: float) -> str:
    if bound == math.inf:
        return "inf"
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


def check_eps_list(eps, high: float = 1.0) -> None:
    """Raise ValueError unless ``eps`` is a non-empty list of finite radii in [0, high] (default: l-inf
    radii of images in [0, 1])."""
    if isinstance(eps, (str, bytes)) or not hasattr(eps, "__len__") or len(eps) == 0:
        raise ValueError(f"eps must be a non-empty list of radii in [0, {_show(high)}], got {eps!r}")
    for value in eps:
        check_range("eps", value, 0.0, high, hint=LINF_HINT if high == 1 else "")
