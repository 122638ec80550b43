"""The SAE stage: subject models, activation streaming, SAE training and the harvest.

Importing this package before torch sets OpenMP's wait policy to passive (unless the environment
already chose one). By default the OpenMP runtime torch loads keeps its idle threads spinning
between parallel regions, taking the core that the harvest's bookkeeping thread runs on (see
sae.torch_threads); with 2 torch threads that spinning cost the demo's SAE's harvest 1.86x against
1.63x the forward pass and encoder (`python -m evals.bench_harvest`), and the forward pass, the
encoder and SAE training alone ran no slower. The runtime reads the setting once, when torch is
first imported, so a program that imports torch first must set OMP_WAIT_POLICY itself.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
