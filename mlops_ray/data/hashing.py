"""Row content hashes: the seeded split, fold ids and the data fingerprint. Pure numpy/pyarrow.

A row's hash depends only on its values (not on its position, its file or its block), so the
holdout assignment and the fingerprint are the same however the rows are split into files or
ordered. Two 64-bit lanes per row; the fingerprint is the pair of lane sums (mod 2^64 each, i.e. an
order-independent multiset hash) plus the row count.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Which rows go to the holdout is a function of the row hash: a model records the scheme it was split
# with, and a gate never compares on rows of a champion split under another scheme. Bump on any change
# to row_hashes or holdout_mask. 2: columns hashed by name (1: in schema order).
SPLIT_SCHEME = "2"

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_NULL = np.uint64(0x6A09E667F3BCC908)
_LANE_SEEDS = (np.uint64(0x243F6A8885A308D3), np.uint64(0x13198A2E03707344))


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective avalanche on uint64 (wraps silently, as intended)."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def _text_hash(value: str, lane: int = 0) -> int:
    digest = hashlib.blake2b(value.encode(), digest_size=8, person=b"mlopsray" + bytes([lane])).digest()
    return int.from_bytes(digest, "little")


def column_hash(arr: pa.Array | pa.ChunkedArray, lane: int) -> np.ndarray:
    """A uint64 per value: floats by their bits (-0.0 as 0.0, missing as one constant), text by blake2b."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type) or pa.types.is_boolean(arr.type):
        x = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
        missing = np.isnan(x)
        x[x == 0.0] = 0.0  # -0.0 and 0.0 are the same value
        bits = x.view(np.uint64).copy()
        bits[missing] = _NULL
        return bits
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr.cast(pa.string()) if not pa.types.is_string(arr.type) else arr)
    values = arr.dictionary.to_pylist()
    table = np.array([_text_hash(str(v), lane) for v in values] + [int(_NULL)], dtype=np.uint64)
    idx = arr.indices.to_numpy(zero_copy_only=False)
    idx = np.where(np.asarray(arr.is_null()), len(values), np.nan_to_num(idx, nan=0)).astype(np.int64)
    return table[idx]


def row_hashes(table: pa.Table, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Two uint64 lanes per row over ``columns`` (in that order; the names take part too).

    The second lane is a different bijective mix of the first: row collisions are already 2^-64
    unlikely, and a second, differently mixed sum makes sums of different row sets agree far less often.
    """
    h = np.full(table.num_rows, _LANE_SEEDS[0], dtype=np.uint64)
    for name in columns:
        name_h = np.uint64(_text_hash(name, 0))
        h = mix64(h * _GOLDEN + (column_hash(table.column(name), 0) ^ name_h))
    return h, mix64(h ^ _LANE_SEEDS[1])


def seeded_uniform(h: np.ndarray, seed: int, salt: int = 0) -> np.ndarray:
    """A uniform [0, 1) number per row hash, different for each (seed, salt)."""
    key = np.uint64((seed * 0x9E3779B1 + salt * 0x85EBCA77 + 0x165667B1) % (1 << 64))
    return (mix64(h ^ mix64(np.array([key], dtype=np.uint64))[0]) >> np.uint64(11)).astype(np.float64) * (2.0**-53)


def holdout_mask(h: np.ndarray, seed: int, fraction: float) -> np.ndarray:
    """True for the rows that go to the holdout split (about ``fraction`` of them)."""
    return seeded_uniform(h, seed, salt=1) < fraction


def assign_folds(h: np.ndarray, k: int, seed: int, strata: np.ndarray | None = None) -> np.ndarray:
    """Fold ids 0..k-1: distinct rows ranked by a seeded hash, then dealt round-robin within each stratum (class).

    Identical rows (equal hashes) share a fold: a copy in another fold would be scored by a model that
    trained on it (a retrain's repeated logged requests made CV scores of 1.0).
    """
    n = h.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    h = np.asarray(h, dtype=np.uint64)
    groups = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata).astype(np.int64)
    order = np.lexsort((h, groups))  # (stratum, hash) pairs, equal ones adjacent (np.unique(axis=0) is 5x slower)
    hs, gs = h[order], groups[order]
    first = np.r_[True, (hs[1:] != hs[:-1]) | (gs[1:] != gs[:-1])]
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return _deal(hs[first], k, seed, gs[first])[inverse]


def _deal(h: np.ndarray, k: int, seed: int, groups: np.ndarray) -> np.ndarray:
    n = h.size
    folds = np.zeros(n, dtype=np.int64)
    key = seeded_uniform(h, seed, salt=2)
    order = np.lexsort((h, key, groups))  # h breaks ties between identical keys deterministically
    sorted_groups = groups[order]
    starts = np.r_[0, np.nonzero(sorted_groups[1:] != sorted_groups[:-1])[0] + 1]
    rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    # Rotate each stratum's start so that small strata do not all pile into fold 0.
    offset = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, n]))
    folds[order] = (rank + offset) % k
    return folds


@dataclass
class FingerprintPartial:
    """Order-independent sums of row hashes (mod 2^64 per lane) and the row count."""

    n: int = 0
    lane0: int = 0
    lane1: int = 0

    @classmethod
    def of(cls, h0: np.ndarray, h1: np.ndarray) -> FingerprintPartial:
        # uint64 sums wrap modulo 2^64, which is what makes the sum order-independent and mergeable.
        return cls(int(h0.size), int(h0.sum(dtype=np.uint64)), int(h1.sum(dtype=np.uint64)))

    def merge(self, other: FingerprintPartial) -> FingerprintPartial:
        mask = (1 << 64) - 1
        return FingerprintPartial(self.n + other.n, (self.lane0 + other.lane0) & mask,
                                  (self.lane1 + other.lane1) & mask)

    def hexdigest(self, context: str = "") -> str:
        """128-bit hex digest of the sums, the count and a context (column names and types, cleaning)."""
        blob = f"{self.n}:{self.lane0:016x}:{self.lane1:016x}:{context}".encode()
        return hashlib.sha256(blob).hexdigest()[:32]
