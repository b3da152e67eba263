"""Attack speed on the paper's PGD-trained smallgap networks (MNIST, CIFAR-10), one batch of 200,
one thread (PAPER.md section 5).

Prints (a) the PGD loop time over the time of the same number of bare forward + input-gradient
passes (the engine's overhead; target <= 1.1), and (b) our PGD against torchattacks' PGD with the
same settings, model and batch (target: not slower). Ratios are measured within this run, each
timing the best of ``REPEATS`` interleaved repetitions.

    python -m benchmarks.bench_attacks
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from interp_core.attacks import PGD
from interp_core.data import load_dataset
from interp_core.models import load_model

BATCH, STEPS, STEP_SIZE, REPEATS = 200, 40, 0.01, 3


def _bare_passes(model, x, y, steps: int) -> None:
    """The work PGD cannot avoid: one forward and one input-gradient backward per step."""
    for _ in range(steps):
        x_req = x.detach().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(x_req), y, reduction="none").sum(), x_req)


def _best_time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(model_name: str, dataset: str, eps: float) -> None:
    import torchattacks

    torch.manual_seed(0)
    model, card = load_model(model_name)
    data = load_dataset(dataset, "demo", n=BATCH)
    x, y = data.images, data.labels
    ours = PGD(eps, STEP_SIZE, STEPS)
    theirs = torchattacks.PGD(model, eps=eps, alpha=STEP_SIZE, steps=STEPS, random_start=False)
    runs = {"bare": lambda: _bare_passes(model, x, y, STEPS), "ours": lambda: ours(model, x, y),
            "torchattacks": lambda: theirs(x, y)}
    for fn in runs.values():  # warm-up
        fn()
    times = {name: float("inf") for name in runs}
    for _ in range(REPEATS):
        for name, fn in runs.items():
            times[name] = min(times[name], _best_time(fn))
    print(f"model {card.name}, batch {BATCH}, {STEPS} steps, eps {eps:.4g}, 1 thread, best of {REPEATS}")
    for name, value in times.items():
        print(f"  {name:<13} {value * 1000:8.1f} ms")
    print(f"(a) PGD loop / bare forward+backward passes: {times['ours'] / times['bare']:.3f}  (target <= 1.1)")
    print(f"(b) our PGD / torchattacks PGD:              {times['ours'] / times['torchattacks']:.3f}  (target <= 1.0)")


def main() -> None:
    torch.set_num_threads(1)
    bench("mnist-smallgap-pgd-at-paper", "mnist", 0.3)
    bench("cifar10-smallgap-pgd-at-paper", "cifar10", 8 / 255)


if __name__ == "__main__":
    main()
