"""A folder's writer lock: two commands on one working directory take turns instead of mixing their files."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)


@contextmanager
def exclusive(lock_file: Path, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (created if missing), waiting for the holder if there is one.

    Where the file system has no ``flock`` (some network mounts) this proceeds unlocked, as before.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.warning("waiting for another command's %s (%s)", what, lock_file)
            print(f"waiting for another command's {what} in this working directory ({lock_file})", flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # no flock here
            pass
        yield
    finally:
        os.close(fd)  # releases the lock
