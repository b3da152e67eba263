"""Cost of one training step per method (the paper's section 6), relative to one normal step.

One step = the method's loss (inner attack included) + backward + Adam update, on a batch of MNIST
images with a fresh smallgap network, one thread. The ideal for an adversarial method is
(inner steps + 1) normal steps: each inner step is one forward + input-gradient pass. The Int
methods forward both x and x' in the outer loss. The IG methods differentiate a 5-point IG at
every inner step: the gradient of ||IG||_1 needs, per IG point, a forward, a backward and a
Hessian-vector product (a second forward-like and backward-like pass): about 2 x 5 = 10 bare
passes per inner step, against 1 for PGD. The IG rows below measure that floor. A free
adversarial training step (the ``free`` preset) is one replay of its batch: one forward and
backward at x + delta, the Adam update and delta's signed step, ideally one normal step; a free
run makes as many steps as normal training of the same epochs.
Medians of interleaved rounds over all methods, within this run.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from benchmarks.results import medians
from interp_core.data import load_dataset
from interp_core.models import build_model
from interp_core.training import DEFAULT_GAMMA, TRAINING_METHODS, FreePerturbation, MethodConfig
from interp_core.training.methods import IG_POINTS, ig_ce

BATCH, STEPS = 50, 10


#: Methods also timed with the ``fast`` preset's one-step inner attack (step 1.25 eps).
ONE_STEP = ("pgd-at", "int", "int2")
#: The row of a free adversarial training step (one replay; the ``free`` preset, step eps).
FREE_ROW = "pgd-at (free preset, one replay)"


def _stepper(method: str, x, y, steps: int = STEPS, free: bool = False):
    """A closure running one training step of ``method`` (``steps`` inner steps) on a fresh network;
    ``free``: one replay of free adversarial training, delta carried from call to call."""
    torch.manual_seed(0)
    model = build_model("smallgap", 1, 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    step_size = 0.3 if free else 0.04 if steps == STEPS else 1.25 * 0.3
    cfg = MethodConfig(eps=0.3, steps=steps, step_size=step_size, gamma=DEFAULT_GAMMA[method], seed=0)
    loss_fn = TRAINING_METHODS["normal" if free else method]  # free: CE at x + delta
    delta = FreePerturbation() if free else None

    def step() -> None:
        x_in = x if delta is None else delta.perturb(x, cfg.eps)
        loss, _ = loss_fn(model, x_in, y, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if delta is not None:
            delta.ascend(x, x_in, cfg.eps, cfg.step_size)

    return step


def _ig_parts(x, y) -> dict:
    """The pieces of one ig-norm inner step, in the eval-mode network the inner attack uses."""
    torch.manual_seed(0)
    model = build_model("smallgap", 1, 10).eval()
    x_adv = (x + 0.3 * (2 * torch.rand_like(x) - 1)).clamp(0, 1)

    def bare() -> None:
        x_req = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(x_req), y, reduction="sum"), x_req)

    def ig_value() -> None:
        ig_ce(model, x, x_adv.clone().requires_grad_(True), y, create_graph=False)

    def ig_gradient() -> None:
        x_req = x_adv.clone().requires_grad_(True)
        norm = ig_ce(model, x, x_req, y, create_graph=True).abs().flatten(1).sum(1)
        torch.autograd.grad(norm.sum(), x_req)

    return {"bare pass": bare, f"IG^CE ({IG_POINTS} points, no graph)": ig_value,
            "gradient of ||IG^CE||_1 (one inner step)": ig_gradient}


def run(quick: bool) -> dict:
    torch.set_num_threads(1)
    rounds = 1 if quick else 4
    data = load_dataset("mnist", "demo", n=BATCH)
    x, y = data.images, data.labels
    steppers = {m: _stepper(m, x, y) for m in TRAINING_METHODS}
    steppers |= {f"{m} (1 inner step, fast preset)": _stepper(m, x, y, steps=1) for m in ONE_STEP}
    steppers[FREE_ROW] = _stepper("pgd-at", x, y, steps=4, free=True)
    started = time.perf_counter()
    t = medians(steppers, rounds)
    base = t["normal"]
    rows = []
    for method, seconds in t.items():
        ideal = 1 if method in ("normal", FREE_ROW) else 2 if "1 inner step" in method else STEPS + 1
        rows.append({"method": method, "ms per step": 1000 * seconds, "x normal step": seconds / base,
                     "ideal (inner steps + 1)": ideal, "x ideal": seconds / base / ideal})
    parts = medians(_ig_parts(x, y), 3 if quick else 5)
    bare = parts["bare pass"]
    ig_rows = [{"piece": name, "ms": 1000 * seconds, "x bare pass": seconds / bare} for name, seconds in parts.items()]
    return {"title": "Training step cost per method",
            "settings": {"threads": 1, "batch": BATCH, "inner steps": STEPS, "network": "smallgap (MNIST), fresh",
                         "rounds": f"{rounds} after a warm-up round", "seconds": round(time.perf_counter() - started)},
            "tables": {"One training step (loss, backward, Adam)": rows,
                       "Where an IG step goes (bare pass: one forward + input-gradient pass on the batch)": ig_rows},
            "notes": [f"{FREE_ROW}: one optimizer step of free adversarial training, m of them per batch; a free "
                      "run of E epochs makes E x batches such steps, the count of E normal epochs",
                      f"an ig-norm inner step differentiates ||IG^CE||_1 through {IG_POINTS} IG points (double "
                      "backward); its floor is about 2 bare passes per point, so an ig-norm step cannot come near "
                      "the (inner steps + 1) ideal without fewer IG points or inner steps"]}
