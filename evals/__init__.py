"""Benchmarks that print ratios measured in one process; installed as autointerp.evals, run from the
repo root as `python -m evals.NAME` or from an install as `python -m autointerp.evals.NAME`."""

import sae  # noqa: F401  (first: it sets OpenMP's wait policy before the benchmarks import torch)
