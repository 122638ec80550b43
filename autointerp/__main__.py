"""`python -m autointerp`: the same command line as `autointerp` (torchrun starts modules this way)."""

import sys

from autointerp.cli import main

sys.exit(main())
