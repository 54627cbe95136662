"""The discovery file: a ConfigMap `<rbg>` with `config.yaml` listing every role's instances and ports,
mounted read-only at /etc/rbg in every container.

The text is what the reference writes (Go's sigs.k8s.io/yaml: JSON field names, map keys in yaml.v2's
natural order, block style, sequences not indented, ambiguous strings double-quoted), so engines and
scripts that read it see the same bytes. It lists replicas, so scaling changes the ConfigMap; the pod
template only names the ConfigMap, so scaling does not roll pods.
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any, Final

import yaml

from rbg_flows.api import RoleBasedGroup, RoleSpec, ServicePort, workload_name
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


def instance_address(rbg_name: str, role_name: str, index: int) -> str:
    """DNS name of instance `index` through the role's headless Service: `<rbg>-<role>-<i>.<rbg>-<role>`.

    Written for every kind, as the reference does: it resolves for StatefulSet pods and
    LeaderWorkerSet leaders (the LeaderWorkerSet's own Service has the same name), not for
    Deployment pods, whose names are random.
    """
    name = workload_name(rbg_name, role_name)
    return f"{name}-{index}.{name}"


def discovery_data(rbg: RoleBasedGroup) -> dict[str, Any]:
    """The content of config.yaml as plain data."""
    _, name = identity(rbg)
    roles = rbg.spec.roles
    return {
        "group": {"name": name, "size": len(roles), "roles": [role.name for role in roles]},
        "roles": {role.name: _role_entry(name, role) for role in roles},
    }


def _role_entry(rbg_name: str, role: RoleSpec) -> dict[str, Any]:
    ports = {port_key(port): port.port for port in role.service_ports}
    instances = []
    for index in range(role.replicas):
        instance: dict[str, Any] = {"address": instance_address(rbg_name, role.name, index)}
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


# --- YAML as Go's sigs.k8s.io/yaml writes it ---------------------------------------------------


def render_go_yaml(data: Any) -> str:
    """YAML text of JSON-shaped data as sigs.k8s.io/yaml.Marshal renders it."""
    return yaml.dump(
        _sorted_maps(data),
        Dumper=_GoYamlDumper,
        default_flow_style=False,
        sort_keys=False,
        allow_unicode=True,
        width=1 << 16,
    )


def _sorted_maps(value: Any) -> Any:
    if isinstance(value, dict):
        keys = sorted(value, key=functools.cmp_to_key(_go_yaml_key_cmp))
        return {key: _sorted_maps(value[key]) for key in keys}
    if isinstance(value, list):
        return [_sorted_maps(item) for item in value]
    return value


def _go_yaml_key_cmp(a: str, b: str) -> int:
    if a == b:
        return 0
    return -1 if _go_yaml_key_less(a, b) else 1


def _go_yaml_key_less(a: str, b: str) -> bool:
    """yaml.v2's ordering of string map keys: letters after other characters, and runs of digits
    compared as numbers ("role2" < "role10")."""
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        a_letter, b_letter = a[i].isalpha(), b[i].isalpha()
        if a_letter and b_letter:
            return a[i] < b[i]
        if a_letter or b_letter:
            return b_letter
        a_num = b_num = 0
        if a[i] == "0" or b[i] == "0":
            j = i - 1
            while j >= 0 and a[j].isdigit():
                if a[j] != "0":
                    a_num = b_num = 1
                    break
                j -= 1
        a_end = i
        while a_end < len(a) and a[a_end].isdigit():
            a_num = a_num * 10 + int(a[a_end])
            a_end += 1
        b_end = i
        while b_end < len(b) and b[b_end].isdigit():
            b_num = b_num * 10 + int(b[b_end])
            b_end += 1
        if a_num != b_num:
            return a_num < b_num
        if a_end != b_end:
            return a_end < b_end
        return a[i] < b[i]
    return len(a) < len(b)


class _GoYamlDumper(yaml.SafeDumper):
    """PyYAML's YAML 1.1 resolver already quotes what yaml.v2 would read as another type (numbers,
    booleans, null, timestamps); yaml.v2 also reads y/n as booleans and quotes with double quotes."""

    def choose_scalar_style(self) -> str:
        style: str = super().choose_scalar_style()
        return '"' if style == "'" else style


_GoYamlDumper.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"), list("yYnN"))
