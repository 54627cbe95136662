"""Ports for servers started on this machine (the sim's components, a local Temporal dev server)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LISTEN_FLOOR = 10000
# A system source, not the `random` module: tests (hypothesis) reseed that, and two processes with the
# same seed would draw the same ports.
_pick = random.SystemRandom()


def _ephemeral_floor() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(preferred: int = 0) -> int:
    """`preferred` if it can be bound on loopback, else a free port below the kernel's ephemeral range.

    Between this check and the server's own bind, a port in the ephemeral range can be handed to any
    process's outgoing connection (a CI run lost a kube-apiserver port that way); below the range only
    another listener can take it.
    """
    floor = _ephemeral_floor()
    drawn = _pick.sample(range(_LISTEN_FLOOR, floor), 32) if floor - _LISTEN_FLOOR >= 32 else []
    for port in ([preferred] if preferred else []) + drawn + [0]:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")
