"""Benchmarks: ``python -m benchmarks`` runs every ``bench_*`` module; each prints its figures,
with ratios measured within one run on the machine at hand."""
