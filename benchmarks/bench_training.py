"""Cost of one training step per method (PAPER.md section 6), relative to one normal step.

One step = the method's loss (inner attack included) + backward + Adam update, on a batch of
MNIST images with a fresh smallgap network, one thread. The ideal for an adversarial method is
(inner steps + 1) normal steps: each inner step is one forward + input-gradient pass. The IG
methods differentiate through a 5-point IG at every inner step (5 double-backward passes), and the
Int methods forward both x and x' in the outer loss, so they cannot reach that ideal. Ratios are
measured within this run: the best of interleaved rounds over all methods.

    python -m benchmarks.bench_training
"""

from __future__ import annotations

import time

import torch

from interp_core.data import load_dataset
from interp_core.models import build_model
from interp_core.training import DEFAULT_GAMMA, TRAINING_METHODS, MethodConfig

BATCH, STEPS, REPEATS = 50, 10, 4


def _stepper(method: str, x, y):
    """A closure running one training step of ``method`` on a fresh network."""
    torch.manual_seed(0)
    model = build_model("smallgap", 1, 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    cfg = MethodConfig(eps=0.3, steps=STEPS, step_size=0.04, gamma=DEFAULT_GAMMA[method], seed=0)
    loss_fn = TRAINING_METHODS[method]

    def step() -> float:
        start = time.perf_counter()
        loss, _ = loss_fn(model, x, y, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    return step


def main() -> None:
    torch.set_num_threads(1)
    data = load_dataset("mnist", "demo", n=BATCH)
    x, y = data.images, data.labels
    steppers = {m: _stepper(m, x, y) for m in TRAINING_METHODS}
    best = {m: float("inf") for m in TRAINING_METHODS}
    for _ in range(REPEATS + 1):  # interleaved rounds, so load changes hit every method alike
        for method, step in steppers.items():
            best[method] = min(best[method], step())
    base = best["normal"]
    print(f"training step cost, MNIST smallgap, batch {BATCH}, {STEPS} inner steps, 1 thread, best of "
          f"{REPEATS + 1} interleaved rounds (normal step: {base * 1000:.1f} ms)")
    print(f"{'method':<12} {'ms/step':>9} {'x normal':>9} {'ideal':>6} {'overhead':>9}")
    for method, t in best.items():
        ideal = 1 if method == "normal" else STEPS + 1
        print(f"{method:<12} {t * 1000:>9.1f} {t / base:>9.2f} {ideal:>6} {t / base / ideal - 1:>+9.0%}")


if __name__ == "__main__":
    main()
