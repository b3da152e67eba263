"""Model lookup by name: the first listing (every model folder scanned: checkpoint cards from the
safetensors headers, paper networks from their file names), a cached lookup (the folders'
modification times checked, the listing reused; target <= 10 ms) and loading a model's weights;
for reference, reading every paper network's weights, which listing did before. Medians within
this run, in CPU time (file reads from the page cache).
"""

from __future__ import annotations

import statistics
import time

from interp_core import paths
from interp_core.models import available_models, load_model, load_paper_network, registry

NAME = "mnist-smallgap-int-paper"


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return 1000 * statistics.median(times)


def _cold() -> None:
    registry._CACHE.clear()
    available_models()


def _lookup() -> None:
    if not [e for e in available_models() if e.name == NAME]:
        raise RuntimeError(f"{NAME} is not listed")


def run(quick: bool) -> dict:
    repeats = 5 if quick else 21
    cold = _median_ms(_cold, repeats)
    cached = _median_ms(_lookup, repeats * 5)
    loading = _median_ms(lambda: load_model(NAME), repeats)
    rows = [{"operation": "first listing (cache empty)", "ms": cold},
            {"operation": f"lookup of {NAME} (listing cached; target <= 10 ms)", "ms": cached},
            {"operation": f"load_model({NAME!r}) (lookup + weights)", "ms": loading}]
    networks = sorted(paths.paper_networks_dir().glob("*.npz"))
    if networks:
        every = _median_ms(lambda: [load_paper_network(path) for path in networks], 3)
        rows.append({"operation": f"reading all {len(networks)} paper networks (the listing before)", "ms": every,
                     "x first listing": every / cold})
    return {"title": "Model lookup by name", "settings": {"models listed": len(available_models()),
                                                          "repeats": repeats},
            "tables": {"Registry": rows}, "notes": []}
