"""Ports for the sim's servers: chosen where no outgoing connection can take them first."""

from __future__ import annotations

import socket

from rbg_flows import localports as procs


def test_a_drawn_port_is_below_the_ephemeral_range_and_bindable() -> None:
    floor = procs._ephemeral_floor()
    ports = {procs.free_port() for _ in range(20)}
    assert all(procs._LISTEN_FLOOR <= p < floor for p in ports)
    assert len(ports) > 1  # drawn, not a fixed sequence
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports.pop()))


def test_a_preferred_port_is_kept_while_free_and_replaced_once_taken() -> None:
    port = procs.free_port()
    assert procs.free_port(port) == port
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        assert procs.free_port(port) != port
