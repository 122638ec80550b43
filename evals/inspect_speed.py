"""How long `autointerp inspect` takes on a catalog, for a text of `--tokens` tokens (64 by default).

Rows, each the fastest of `--repeats` runs (the least disturbed by other work on the machine), by wall
clock and by CPU time (the steadier of the two on a shared machine):
    whole command            `python -m autointerp.cli inspect DB TEXT --json` in a fresh process
    of which: imports        `import autointerp.cli` alone in a fresh process (torch is most of it)
    open catalog             open_store (in this process)
    load model and SAE       Inspector(...): the subject model and SAE the catalog records
    inspect the text         one forward pass to the hook, SAE encode, top units, their explanations

    python -m evals.inspect_speed DB [--tokens 64] [--repeats 3]

Opening a catalog made by an older version adds the search index table to it: run this on a copy.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from collections.abc import Callable

from autointerp.query.inspect import Inspector
from autointerp.store import CatalogStore, open_store

SAMPLE = (
    "def read_config(path):\n    with open(path, encoding='utf-8') as handle:\n        data = json.load(handle)\n"
    "    if 'name' not in data:\n        raise ValueError(f'{path}: no name')\n    return data\n\n"
    "The function returns the parsed settings, or raises an error when the file has no name in it. "
)


def text_of(inspector: Inspector, n_tokens: int) -> str:
    """The first `n_tokens` tokens of the sample text (repeated as needed), as text."""
    tokenizer = inspector.subject.tokenizer
    ids = tokenizer.encode_batch([SAMPLE * (1 + n_tokens // 20)])[0][:n_tokens]
    return "".join(tokenizer.token_strings(ids))


def in_process(run: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def fresh_process(argv: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    store: CatalogStore = open_store(args.db)
    source = store.sources()[0]
    inspector = Inspector(store, source)
    text = text_of(inspector, args.tokens)
    n_tokens = len(inspector.subject.tokenizer.encode_batch([text])[0])
    rows: dict[str, list[tuple[float, float]]] = {}
    for _ in range(args.repeats):
        rows.setdefault("whole command", []).append(
            fresh_process(["-m", "autointerp.cli", "inspect", args.db, text, "--json"])
        )
        rows.setdefault("of which: imports", []).append(fresh_process(["-c", "import autointerp.cli"]))
        rows.setdefault("open catalog", []).append(in_process(lambda: open_store(args.db).close()))
        rows.setdefault("load model and SAE", []).append(in_process(lambda: Inspector(store, source)))
        rows.setdefault("inspect the text", []).append(in_process(lambda: inspector.inspect(text)))
    print(f"{args.db}, source {source}, a text of {n_tokens} tokens; fastest of {args.repeats} runs")
    print(f"{'':<22} {'wall s':>8} {'CPU s':>8}")
    for name, runs in rows.items():
        print(f"{name:<22} {min(w for w, _ in runs):>8.3f} {min(c for _, c in runs):>8.3f}")


if __name__ == "__main__":
    main()
