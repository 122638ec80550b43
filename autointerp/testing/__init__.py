"""Test doubles shipped with the package: a local OpenAI/Anthropic-compatible HTTP server and planted
units with known triggers. The test suite and the benchmarks in `autointerp.evals` both use them, so
they live here rather than under tests/ (a wheel install has no tests/)."""
