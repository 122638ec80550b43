"""autointerp: SAE training and harvest (the `sae` package), explainers, simulators and scorers,
the catalog store, and the agent."""

import sae  # noqa: F401  (first: it sets OpenMP's wait policy before anything imports torch)
