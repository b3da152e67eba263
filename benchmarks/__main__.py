"""Run every benchmark module (``bench_*.py``) in turn."""

import importlib
import pkgutil

import benchmarks

for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
    if info.name.startswith("bench_"):
        print(f"== {info.name}")
        importlib.import_module(f"benchmarks.{info.name}").main()
