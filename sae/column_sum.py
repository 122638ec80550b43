"""Column sums of a sparse matrix, bit for bit as torch's CPU `dense.sum(0)` gives them for float32.

That sum is a cascade: each column's rows are added in chunks of 2**p (p = max(4, ceil(log2 n) // 4)),
the chunk sums into level-1 accumulators flushed every 2**(2p) rows, those into level-2 every 2**(3p),
then level 3; the rows after the last whole chunk, then the unflushed accumulators, are added last.
A zero added to a float leaves it unchanged, so each accumulator is the in-order sum of its nonzero
inputs: the cascade can be replayed over the nonzero entries alone, at a cost that follows their
number. The harvest relies on it to keep the statistics of a sparse unit kind (SAE features)
identical to those its dense activations gave.
"""

from __future__ import annotations

import torch

LEVELS = 4


def _level_power(n_rows: int) -> int:
    ceil_log2 = 1 if n_rows <= 2 else (n_rows - 1).bit_length()
    return max(4, ceil_log2 // LEVELS)


def ordered_segment_sum(segment: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(segments, sums): `values` grouped by `segment` (non-decreasing), each group added in order
    from 0.0, as a sequential loop would (one vectorised step per position within a group)."""
    if segment.numel() == 0:
        return segment, values
    unique, counts = torch.unique_consecutive(segment, return_counts=True)
    group = torch.repeat_interleave(torch.arange(len(unique), device=segment.device), counts)
    position = torch.arange(len(segment), device=segment.device) - (torch.cumsum(counts, 0) - counts)[group]
    sums = torch.zeros(len(unique), dtype=values.dtype, device=values.device)
    by_position = position.argsort(stable=True)  # the first of every group, then the second, ...
    ends = torch.cumsum(torch.bincount(position), 0).tolist()
    for start, end in zip([0, *ends[:-1]], ends):
        at = by_position[start:end]
        sums.index_add_(0, group[at], values[at])  # one value per group: an in-order addition
    return unique, sums


def sparse_column_sum(
    cols: torch.Tensor, rows: torch.Tensor, values: torch.Tensor, n_rows: int, n_cols: int
) -> torch.Tensor:
    """[n_cols] sums of the matrix whose nonzero entries are (rows, cols, values), the entries sorted
    by column, then row."""
    p = _level_power(n_rows)
    full = (n_rows >> p) << p  # rows in whole chunks; the rest are the tail
    out = torch.zeros(n_cols, dtype=values.dtype, device=values.device)
    in_tail = rows >= full
    tail_cols, tail = ordered_segment_sum(cols[in_tail], values[in_tail])
    out[tail_cols] += tail
    # level 0: chunk sums, keyed col * chunks + chunk
    n_chunks = max(1, full >> p)
    keys, sums = ordered_segment_sum(cols[~in_tail] * n_chunks + (rows[~in_tail] >> p), values[~in_tail])
    units = n_chunks  # chunks per column at this level
    for level in range(1, LEVELS):
        col, index = keys // units, keys % units
        if level == LEVELS - 1:  # the last accumulator is never flushed
            last_cols, last = ordered_segment_sum(col, sums)
            out[last_cols] += last
            break
        complete = units >> p  # whole blocks of 2**p at this level
        block = index >> p
        keys, block_sums = ordered_segment_sum(col * (complete + 1) + block, sums)
        col, block = keys // (complete + 1), keys % (complete + 1)
        unflushed = block == complete
        out[col[unflushed]] += block_sums[unflushed]
        units = max(1, complete)
        keys, sums = col[~unflushed] * units + block[~unflushed], block_sums[~unflushed]
    return out
