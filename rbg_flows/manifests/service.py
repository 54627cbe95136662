"""The headless Service `s-<rbg>-<role>` that gives StatefulSet pods their DNS names
(`<rbg>-<role>-<i>.s-<rbg>-<role>`, the addresses of the discovery file), named as the reference names it
since v0.5 (v0.4's `<rbg>-<role>` is migrated away from: activities/service_names.py).

LeaderWorkerSet roles get theirs from the LeaderWorkerSet controller, Deployment roles none.
"""

from __future__ import annotations

from typing import Any

from rbg_flows.api import RoleBasedGroup, RoleSpec, service_name
from rbg_flows.manifests.labels import identity, object_meta, role_labels, role_selector


def build_headless_service(rbg: RoleBasedGroup, role: RoleSpec) -> dict[str, Any]:
    """Headless Service of a StatefulSet role, owned by the group."""
    _, name = identity(rbg)
    spec: dict[str, Any] = {
        "clusterIP": "None",
        # Peers must resolve each other while starting up (e.g. to form a NCCL group), before ready.
        "publishNotReadyAddresses": True,
        "selector": role_selector(rbg, role),
    }
    ports = service_ports(role)
    if ports:
        spec["ports"] = ports
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(rbg, service_name(name, role.name), role_labels(rbg, role)),
        "spec": spec,
    }


def service_ports(role: RoleSpec) -> list[dict[str, Any]]:
    """The role's servicePorts as Service ports.

    A Service with several ports needs every port named, so unnamed ones are called `port<number>`
    (the key the discovery file already uses for them). nodePort has no meaning on a headless
    Service and is left out.
    """
    many = len(role.service_ports) > 1
    ports = []
    for port in role.service_ports:
        out: dict[str, Any] = {}
        if port.name:
            out["name"] = port.name
        elif many:
            out["name"] = f"port{port.port}"
        out["port"] = port.port
        if port.target_port is not None:
            out["targetPort"] = port.target_port
        out["protocol"] = port.protocol
        if port.app_protocol is not None:
            out["appProtocol"] = port.app_protocol
        ports.append(out)
    return ports
