"""A Parquet input cut into parts for batch scoring: planned on the driver, each read and written by one actor.

A part is a run of consecutive row groups (of one big file, or of several small ones, in file order).
The scoring actor reads its part with pyarrow,
scores it batch by batch and writes one output file, so a block never crosses the object store and no
read or write task starts a worker process of its own (on 2 cores those cost more than the scoring:
see benchmarks/BENCHMARKS.md). Memory per actor stays one batch, whatever the file sizes.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlops_ray.exceptions import DataError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs as pafs

# Small parts even out the actors' finishing times (a row group is the smallest unit anyway); each part is
# one output file, and never fewer rows than a batch.
PARTS_PER_ACTOR = 16


@dataclass(frozen=True)
class Segment:
    """Row groups ``row_groups`` of one file (``rows`` rows)."""

    path: str
    row_groups: tuple[int, ...]
    rows: int


@dataclass(frozen=True)
class Part:
    """Segments of one or more files, scored in order into ``part-<index>.parquet``."""

    index: int
    segments: tuple[Segment, ...]

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.segments)


@dataclass(frozen=True)
class ParquetInput:
    """What the driver learnt from the files' footers: no row is read."""

    files: list[str]
    row_group_rows: list[list[int]]
    columns: list[str]

    @property
    def rows(self) -> int:
        return sum(sum(r) for r in self.row_group_rows)


def target_part_rows(total_rows: int, workers: int, batch_size: int) -> int:
    """About ``PARTS_PER_ACTOR`` parts per actor, never less than one batch."""
    return max(batch_size, math.ceil(total_rows / max(1, workers * PARTS_PER_ACTOR)), 1)


def plan_parts(files: Sequence[str], row_group_rows: Sequence[Sequence[int]], target_rows: int) -> list[Part]:
    """Consecutive row groups, in file order, ``target_rows`` or more per part (the last may be smaller).

    A row group is the smallest unit a Parquet reader can seek to, so a big one is a part of its own;
    small files share a part (thousands of tiny input files do not become thousands of output files).
    Empty row groups are skipped.
    """
    parts: list[Part] = []
    segments: list[Segment] = []
    part_rows = 0
    for path, groups in zip(files, row_group_rows, strict=True):
        run: list[int] = []
        run_rows = 0
        for i, n in enumerate(groups):
            if n == 0:
                continue
            run.append(i)
            run_rows += n
            if part_rows + run_rows >= target_rows:
                parts.append(Part(len(parts), (*segments, Segment(path, tuple(run), run_rows))))
                segments, part_rows, run, run_rows = [], 0, [], 0
        if run:
            segments.append(Segment(path, tuple(run), run_rows))
            part_rows += run_rows
    if segments:
        parts.append(Part(len(parts), tuple(segments)))
    return parts


def part_file_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def _partial_name(index: int) -> str:
    """Where a part is written until it is whole: hidden (readers skip it), unique per attempt."""
    return f".{part_file_name(index)}.{uuid.uuid4().hex[:8]}.tmp"


def remove_partial_files(fs: pafs.FileSystem, out_dir: str) -> None:
    """The in-progress files of parts whose actor died mid-write (each retry wrote its part again)."""
    import pyarrow.fs as pafs

    for info in fs.get_file_info(pafs.FileSelector(out_dir)):
        if info.base_name.startswith(".part-") and info.base_name.endswith(".tmp"):
            fs.delete_file(info.path)


def absolute(path: str) -> str:
    """A local path made absolute (against this process's working directory); a URI as it is."""
    return path if "://" in path else os.path.abspath(path)


def resolve_filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path in it): a URI (s3://, gs://, file://) through pyarrow, anything else a local path."""
    import pyarrow.fs as pafs

    if "://" in path:
        try:
            return pafs.FileSystem.from_uri(path)
        except (ValueError, OSError) as e:
            raise DataError(f"cannot open {path!r}: {e}") from e
    return pafs.LocalFileSystem(), absolute(path)


def inspect_input(path: str, threads: int = 16) -> ParquetInput:
    """List the Parquet files under ``path`` (a file or a folder; names starting with ``.`` or ``_`` are
    skipped) and read their footers: schema and rows per row group."""
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    fs, root = resolve_filesystem(path)
    try:
        dataset = pads.dataset(root, filesystem=fs, format="parquet")
    except FileNotFoundError as e:
        raise DataError(f"no such file or folder: {path!r} ({root})") from e
    except (OSError, pa.ArrowInvalid) as e:
        raise DataError(f"cannot read Parquet input {path!r}: {e}") from e
    files = sorted(dataset.files)
    if not files:
        raise DataError(f"no Parquet files under {path!r}")

    def footer(file: str) -> list[int]:
        try:
            meta = pq.read_metadata(file, filesystem=fs)
        except (OSError, pa.ArrowInvalid) as e:
            raise DataError(f"{file} is not a readable Parquet file: {e}") from e
        return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]

    with ThreadPoolExecutor(max_workers=min(threads, len(files))) as pool:
        row_group_rows = list(pool.map(footer, files))
    return ParquetInput(files=files, row_group_rows=row_group_rows, columns=list(dataset.schema.names))


def score_part(part: Part, score: Callable[[pa.Table], pa.Table], *, columns: Sequence[str], batch_size: int,
               output_dir: str, input_fs: pafs.FileSystem, output_fs: pafs.FileSystem) -> int:
    """Read ``part``'s row groups batch by batch, score, write ``part-<index>.parquet``; returns rows written.

    On a local disk the file appears whole or not at all (written under a hidden name, then renamed), so a
    retried part replaces its own output and a reader never sees half a file. Object stores publish an
    object only when its upload completes, so there it is written in place.
    """
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    final = f"{output_dir}/{part_file_name(part.index)}"
    local = isinstance(output_fs, pafs.LocalFileSystem)
    target = f"{output_dir}/{_partial_name(part.index)}" if local else final
    written = 0
    writer: pq.ParquetWriter | None = None
    published = not local
    try:
        for segment in part.segments:
            with input_fs.open_input_file(segment.path) as source:
                reader = pq.ParquetFile(source)
                missing = [c for c in columns if c not in reader.schema_arrow.names]
                if missing:
                    raise DataError(f"{segment.path} lacks column(s) {missing} (the first file has them); every "
                                    "input file must have the model's input columns")
                for batch in reader.iter_batches(batch_size=batch_size, row_groups=list(segment.row_groups),
                                                 columns=list(columns)):
                    scored = score(pa.Table.from_batches([batch]))
                    if writer is None:
                        writer = pq.ParquetWriter(target, scored.schema, filesystem=output_fs)
                    elif scored.schema != writer.schema:
                        scored = _conform(scored, writer.schema, segment.path)
                    writer.write_table(scored)
                    written += scored.num_rows
        if writer is not None:
            writer.close()
            writer = None
            if local:
                output_fs.move(target, final)
        published = True
    finally:
        if writer is not None:
            writer.close()
        if not published:  # a failed part leaves nothing behind; its retry starts over
            try:
                output_fs.delete_file(target)
            except (FileNotFoundError, OSError):
                pass
    return written


def _conform(table: pa.Table, schema: pa.Schema, path: str) -> pa.Table:
    """A batch from a file whose passthrough types differ a little (int32 vs int64) from the part's first file."""
    import pyarrow as pa

    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as e:
        raise DataError(f"{path}: its columns do not match the earlier files' ({e}); give every input file "
                        "the same schema") from e
