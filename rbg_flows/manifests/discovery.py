"""The discovery file: a ConfigMap `<rbg>` with `config.yaml` listing every role's instances and ports,
mounted read-only at /etc/rbg in every container.

The text is what the reference writes (Go's sigs.k8s.io/yaml: JSON field names, map keys in yaml.v2's
natural order, block style, sequences not indented, ambiguous strings double-quoted), so engines and
scripts that read it see the same bytes. It lists replicas, so scaling changes the ConfigMap; the pod
template only names the ConfigMap, so scaling does not roll pods.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from rbg_flows.api import RoleBasedGroup, RoleSpec, ServicePort, address_service_name, workload_name
from rbg_flows.api.limits import CONFIGMAP_MAX_BYTES, discovery_bytes
from rbg_flows.manifests.goyaml import render_go_yaml
from rbg_flows.manifests.labels import group_labels, identity, object_meta

CONFIG_KEY: Final = "config.yaml"
VOLUME_NAME: Final = "rbg-cluster-config"
MOUNT_PATH: Final = "/etc/rbg"


def port_key(port: ServicePort) -> str:
    """Key of a port in the discovery file: its name in lower case with '-' turned into '_', or
    `port<number>` when unnamed."""
    if port.name:
        return port.name.replace("-", "_").lower()
    return f"port{port.port}"


def instance_address(rbg_name: str, role: RoleSpec, index: int) -> str:
    """DNS name of instance `index`: `<rbg>-<role>-<i>.<service>` (see `address_service_name`).

    Written for every kind, as the reference does: it resolves for StatefulSet pods and
    LeaderWorkerSet leaders, not for Deployment pods, whose names are random.
    """
    service = address_service_name(rbg_name, role.name, leader_worker_set=role.is_leader_worker_set)
    return f"{workload_name(rbg_name, role.name)}-{index}.{service}"


def discovery_data(rbg: RoleBasedGroup) -> dict[str, Any]:
    """The content of config.yaml as plain data.

    Raises ValueError, before building anything, when the file could not fit in a ConfigMap: validation
    refuses such specs, and this keeps any other caller from building one entry per replica of an
    unchecked spec (a role at int32 replicas once took the worker to 23 GB)."""
    _, name = identity(rbg)
    roles = rbg.spec.roles
    size = discovery_bytes(name, roles)
    if size > CONFIGMAP_MAX_BYTES:
        raise ValueError(f"the discovery file would be about {size} bytes, more than {CONFIGMAP_MAX_BYTES}")
    return {
        "group": {"name": name, "size": len(roles), "roles": [role.name for role in roles]},
        "roles": {role.name: _role_entry(name, role) for role in roles},
    }


def _role_entry(rbg_name: str, role: RoleSpec) -> dict[str, Any]:
    ports = {port_key(port): port.port for port in role.service_ports}
    instances = []
    for index in range(role.replicas):
        instance: dict[str, Any] = {"address": instance_address(rbg_name, role, index)}
        if ports:  # the reference omits an empty ports map
            instance["ports"] = dict(ports)
        instances.append(instance)
    return {"size": role.replicas, "instances": instances}


def discovery_config(rbg: RoleBasedGroup) -> str:
    """config.yaml, byte for byte as the reference renders it."""
    return render_go_yaml(discovery_data(rbg))


def discovery_configmap(rbg: RoleBasedGroup) -> dict[str, Any]:
    """The ConfigMap `<rbg>` holding config.yaml, owned by the group."""
    _, name = identity(rbg)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(rbg, name, group_labels(rbg)),
        "data": {CONFIG_KEY: discovery_config(rbg)},
    }


def mount_discovery(pod_template: dict[str, Any], rbg_name: str) -> dict[str, Any]:
    """A copy of the template with the ConfigMap as volume `rbg-cluster-config` and a read-only mount
    of it at /etc/rbg in every container and init container.

    A user volume of that name or a user mount at /etc/rbg is replaced: the file must be where the
    contract says.
    """
    out = copy.deepcopy(pod_template)
    spec = out.setdefault("spec", {})
    volume = {
        "name": VOLUME_NAME,
        "configMap": {"name": rbg_name, "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}]},
    }
    spec["volumes"] = [v for v in spec.get("volumes") or [] if v.get("name") != VOLUME_NAME] + [volume]
    mount = {"name": VOLUME_NAME, "mountPath": MOUNT_PATH, "readOnly": True}
    for list_key in ("initContainers", "containers"):
        for container in spec.get(list_key) or []:
            mounts = [
                m
                for m in container.get("volumeMounts") or []
                if m.get("name") != VOLUME_NAME and m.get("mountPath") != MOUNT_PATH
            ]
            container["volumeMounts"] = [*mounts, dict(mount)]
    return out
