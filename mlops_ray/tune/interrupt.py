"""Ctrl-C during a search: Tune stops and saves its state, and the caller knows the search did not finish.

Tune's own SIGINT handler stops the run gracefully, but ``Tuner.fit()`` then returns as if the search had
ended, and the trials it cut short look finished: a pipeline would register the partial winner. Here
Tune's SIGINT handler is turned off (``TUNE_DISABLE_SIGINT_HANDLER``) and ours asks Tune to stop through
the signal Tune always listens to for that (SIGUSR1), and remembers that it did. A second Ctrl-C raises
KeyboardInterrupt at once.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

DISABLE_TUNE_SIGINT = {"TUNE_DISABLE_SIGINT_HANDLER": "1"}


@contextmanager
def interrupt_guard() -> Iterator[threading.Event]:
    """Yields an event that is set once Ctrl-C asked the search to stop."""
    stopped = threading.Event()
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGUSR1"):
        yield stopped  # signals reach only the main thread; Tune's own handling applies elsewhere
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(sig: int, frame: Any) -> None:
        if stopped.is_set():
            raise KeyboardInterrupt
        stopped.set()
        os.kill(os.getpid(), signal.SIGUSR1)  # Tune: stop the trials, save the experiment state, return

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stopped
    finally:
        signal.signal(signal.SIGINT, previous)
