"""The package's own errors raised inside Ray tasks, brought back to the caller as they were raised.

A ``DataError`` raised in a Ray Data task reaches the driver as ``RayTaskError(DataError)`` (whose text is
the worker's traceback), with Ray Data's retry advice appended to its message, after Ray Data has logged
it to the console twice as an internal failure. ``own_error`` digs out the original and ``quiet_task_errors``
keeps those console records back (Ray Data's log file still gets them), so the user reads one clear line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from mlops_ray.exceptions import MlopsRayError

_RAY_DATA_SUFFIX = "\nFailed to "  # Ray Data appends "Failed to apply UDF transform after 1/1 attempts ..."


def own_error(error: BaseException) -> MlopsRayError | None:
    """The package's own error inside Ray's wrappers, with its original message (None: a Ray failure)."""
    from ray.exceptions import RayError

    seen: set[int] = set()
    stack: list[BaseException | None] = [error]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, MlopsRayError) and not isinstance(e, RayError):  # not Ray's RayTaskError(<ours>) mix
            message = str(e).split(_RAY_DATA_SUFFIX, 1)[0]
            if message == str(e):
                return e
            clean = type(e)(message)
            clean.__cause__ = e.__cause__
            return clean
        stack.extend([getattr(e, "cause", None), e.__cause__, e.__context__])
    return None


class _DropTaskErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR or not record.name.startswith(
            ("ray.data.exceptions", "ray.data._internal.execution"))


@contextmanager
def quiet_task_errors() -> Iterator[None]:
    """Keep Ray Data's console error records back while a Dataset runs whose failures the caller reports."""
    handlers = [h for h in logging.getLogger("ray.data").handlers if isinstance(h, logging.StreamHandler)]
    drop = _DropTaskErrors()
    for h in handlers:
        h.addFilter(drop)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(drop)


__all__ = ["own_error", "quiet_task_errors"]
