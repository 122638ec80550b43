"""A unit's examples and a score's per-example details as one compressed blob of numeric arrays.

Most of a catalog is numbers: ~160 examples of 32 activations per unit, and the per-token predictions
and activations each simulation score keeps. In the demo (4,608 units) they took 77 KB per unit as
JSON rows with their indexes, and take 5.6 KB packed. Nothing is lost: the harvest rounds activations
to 4 decimals, so they are stored exactly as integers of 1e-4 (most are 0, which zlib all but
removes); an array holding any other value (an imported activation, a NaN) is stored as float64
instead. Decoding gives back the same floats (a -0.0 comes back as 0.0, as it did from JSON).

A blob is zlib(version, column count, then per column its dtype and length, then the columns' bytes),
always little-endian.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import cast, get_args

import numpy as np
from pydantic import TypeAdapter

from autointerp.records import ActivationExample, ExampleScore, ExampleSplit, Sampling

VERSION = 1  # of this layout; a file whose blobs a later layout wrote has a newer schema, refused on open
FIXED = 10_000  # fixed-point scale: activations are harvested rounded to 4 decimals
_DTYPES = ("<i4", "<f8", "|u1", "|i1")  # what a column may hold, by code
SPLITS: tuple[ExampleSplit, ...] = get_args(ExampleSplit)
SAMPLINGS: tuple[Sampling, ...] = get_args(Sampling)
_NONE = -1  # an absent quantile or correct, an int column's stand-in for None


def pack(columns: Sequence[np.ndarray]) -> bytes:
    """Compress arrays of the dtypes in _DTYPES into one blob."""
    head = struct.pack("<BB", VERSION, len(columns))
    for column in columns:
        head += struct.pack("<BI", _DTYPES.index(column.dtype.str), column.size)
    return zlib.compress(head + b"".join(np.ascontiguousarray(c).tobytes() for c in columns))


def unpack(blob: bytes) -> list[np.ndarray]:
    """The arrays `pack` was given."""
    raw = zlib.decompress(blob)
    n = raw[1]
    offset = 2 + 5 * n
    columns = []
    for i in range(n):
        code, size = struct.unpack_from("<BI", raw, 2 + 5 * i)
        dtype = np.dtype(_DTYPES[code])
        columns.append(np.frombuffer(raw, dtype=dtype, count=size, offset=offset))
        offset += size * dtype.itemsize
    return columns


def float_column(values: np.ndarray) -> np.ndarray:
    """Integers of 1e-4 when that round-trips every value exactly, else the float64 values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size and np.isfinite(values).all() and np.abs(values).max() < 2**31 / FIXED:
        ints = np.rint(values * FIXED).astype("<i4")
        if np.array_equal(ints / FIXED, values):
            return ints
    return values.astype("<f8")


def floats(column: np.ndarray) -> list[float]:
    """The values `float_column` stored."""
    return (column / FIXED if column.dtype.kind == "i" else column).tolist()


def _ints(values: Sequence[int | None]) -> np.ndarray:
    return np.array([_NONE if v is None else v for v in values], dtype="<i4")


def _codes(values: Sequence[str], names: tuple[str, ...]) -> np.ndarray:
    return np.array([names.index(v) for v in values], dtype="|u1")


def _concat(arrays: list[list[float]]) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.float64) for a in arrays]) if arrays else np.zeros(0)


def _split(flat: list[float], lengths: np.ndarray) -> list[list[float]]:
    ends = np.cumsum(lengths).tolist()
    return [flat[end - n : end] for n, end in zip(lengths.tolist(), ends)]


def pack_examples(examples: Sequence[ActivationExample]) -> bytes:
    """A unit's examples, in order, without their tokens (those live once per window)."""
    return pack(
        [
            _ints([e.window_id for e in examples]),
            _ints([e.start for e in examples]),
            _ints([len(e.activations) for e in examples]),
            _codes([e.split for e in examples], SPLITS),
            _codes([e.sampling for e in examples], SAMPLINGS),
            _ints([e.quantile for e in examples]),
            float_column(_concat([e.activations for e in examples])),
        ]
    )


def unpack_examples(
    blob: bytes, window_tokens: Callable[[list[int]], Mapping[int, list[str | None]]]
) -> list[ActivationExample]:
    """The examples `pack_examples` stored, their tokens cut from the tokens of their windows, which
    `window_tokens` gives for a list of window ids."""
    window_ids, starts, lengths, splits, samplings, quantiles, activations = unpack(blob)
    tokens = window_tokens(window_ids.tolist())
    rows = zip(
        window_ids.tolist(),
        starts.tolist(),
        _split(floats(activations), lengths),
        splits.tolist(),
        samplings.tolist(),
        quantiles.tolist(),
    )
    # model_construct: these were validated on the way in; re-validating ~160 examples per unit would
    # cost more than reading them. An example's own span of its window is never null.
    return [
        ActivationExample.model_construct(
            window_id=window_id,
            start=start,
            tokens=cast("list[str]", tokens[window_id][start : start + len(acts)]),
            activations=acts,
            split=SPLITS[split],
            sampling=SAMPLINGS[sampling],
            quantile=None if quantile == _NONE else quantile,
        )
        for window_id, start, acts, split, sampling, quantile in rows
    ]


def pack_details(details: Sequence[ExampleScore]) -> bytes:
    """A score's per-example details; a one-number prediction or actual is stored with length -1."""

    def lengths(values: list[list[float] | float]) -> np.ndarray:
        return _ints([_NONE if isinstance(v, (int, float)) else len(v) for v in values])

    def flat(values: list[list[float] | float]) -> np.ndarray:
        return float_column(_concat([[v] if isinstance(v, (int, float)) else v for v in values]))

    predicted = [d.predicted for d in details]
    actual = [d.actual for d in details]
    return pack(
        [
            _ints([d.window_id for d in details]),
            _codes([d.sampling for d in details], SAMPLINGS),
            np.array([_NONE if d.correct is None else int(d.correct) for d in details], dtype="|i1"),
            lengths(predicted),
            flat(predicted),
            lengths(actual),
            flat(actual),
        ]
    )


def unpack_details(blob: bytes) -> list[ExampleScore]:
    """The details `pack_details` stored."""
    window_ids, samplings, correct, predicted_lengths, predicted, actual_lengths, actual = unpack(blob)

    def values(flat: np.ndarray, lengths: np.ndarray) -> list[list[float] | float]:
        stored = _split(floats(flat), np.where(lengths == _NONE, 1, lengths))
        return [v[0] if n == _NONE else v for v, n in zip(stored, lengths.tolist())]

    rows = zip(
        window_ids.tolist(),
        samplings.tolist(),
        correct.tolist(),
        values(predicted, predicted_lengths),
        values(actual, actual_lengths),
    )
    # validated from plain dicts in one call: faster than constructing each record in Python
    return _DETAILS.validate_python(
        [
            {
                "window_id": w,
                "sampling": SAMPLINGS[s],
                "predicted": p,
                "actual": a,
                "correct": None if c < 0 else bool(c),
            }
            for w, s, c, p, a in rows
        ]
    )


_DETAILS = TypeAdapter(list[ExampleScore])
