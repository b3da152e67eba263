"""PGD speed (the paper's section 5 attack), one thread: MNIST smallgap, CIFAR-10 smallgap and
wresnet, batches of 1 and 200 demo images.

Per case: our PGD (no random start, ``steps`` signed steps) against (a) the same number of bare
forward + input-gradient passes, the work PGD cannot avoid (target <= 1.1; our PGD also scores x
and its final iterate, two forward passes that weigh more the fewer the steps), and (b)
torchattacks' PGD with the same settings, model and batch (target <= 1.0). Medians of interleaved
repetitions within this run, in CPU time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmarks.results import medians
from interp_core.attacks import PGD
from interp_core.data import load_dataset
from interp_core.models import load_model

STEP_SIZE = 0.01
#: (model, dataset, eps, steps, steps in --quick): wresnet passes take seconds at batch 200.
CASES = (("mnist-smallgap-pgd-at-paper", "mnist", 0.3, 20, 5),
         ("cifar10-smallgap-pgd-at-paper", "cifar10", 8 / 255, 20, 5),
         ("cifar10-wresnet-normal-paper", "cifar10", 8 / 255, 5, 2))
BATCHES = (1, 200)


def _bare_passes(model, x, y, steps: int) -> None:
    """The work PGD cannot avoid: one forward and one input-gradient backward per step."""
    for _ in range(steps):
        x_req = x.detach().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(x_req), y, reduction="none").sum(), x_req)


def run(quick: bool) -> dict:
    import torchattacks

    torch.set_num_threads(1)
    rows = []
    for name, dataset, eps, steps, quick_steps in CASES:
        model, _ = load_model(name)
        steps = quick_steps if quick else steps
        for batch in BATCHES:
            data = load_dataset(dataset, "demo", n=batch)
            x, y = data.images, data.labels
            ours = PGD(eps, STEP_SIZE, steps)
            theirs = torchattacks.PGD(model, eps=eps, alpha=STEP_SIZE, steps=steps, random_start=False)
            heavy = batch > 1 and "wresnet" in name
            if heavy:
                repeats = 1
            elif batch == 1:
                repeats = 3 if quick else 7
            else:
                repeats = 1 if quick else 3
            t = medians({"bare": lambda: _bare_passes(model, x, y, steps), "ours": lambda: ours(model, x, y),
                         "torchattacks": lambda: theirs(x, y)}, repeats, warmup=not heavy)
            rows.append({"model": name, "batch": batch, "steps": steps, "repeats": repeats,
                         "CPU ms per step (ours)": 1000 * t["ours"] / steps,
                         "ours / bare passes": t["ours"] / t["bare"],
                         "ours / torchattacks": t["ours"] / t["torchattacks"]})
    return {"title": "PGD against bare passes and torchattacks",
            "settings": {"threads": 1, "step_size": STEP_SIZE, "random_start": False,
                         "warm-up": "one round, except wresnet at batch 200"},
            "tables": {"PGD (targets: ours / bare <= 1.1, ours / torchattacks <= 1.0)": rows},
            "notes": ["bare passes: `steps` forward + input-gradient passes; our PGD adds two scoring forward "
                      "passes (x and the final iterate, to keep the best example), which weigh most at few steps"]}
