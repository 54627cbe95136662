"""How a long-running process learns it should stop: SIGTERM (Kubernetes) or SIGINT (a terminal)."""

from __future__ import annotations

import asyncio
import signal


def stop_event() -> asyncio.Event:
    """An event set on SIGTERM or SIGINT (call from the running loop)."""
    stop = asyncio.Event()
    set_on_signals(stop)
    return stop


def set_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set `stop` (again: a library that installed its own handlers replaced ours)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
