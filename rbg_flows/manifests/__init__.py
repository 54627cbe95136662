"""Pure builders: RoleBasedGroup model -> the Kubernetes objects that run it (workloads, headless
Services, the discovery ConfigMap), plus the revision hashes and the strategic merge patch they rely
on. No I/O: every function returns plain dicts ready for server-side apply."""

from rbg_flows.api.keys import (
    CONTROLLER_REVISION_HASH_LABEL,
    DISABLE_EXCLUSIVE_TOPOLOGY_ANNOTATION,
    EXCLUSIVE_TOPOLOGY_ANNOTATION,
    GROUP_NAME_LABEL,
    GROUP_UNIQUE_KEY_LABEL,
    POD_INDEX_LABEL,
    ROLE_LABEL,
    ROLE_REVISION_LABEL_PREFIX,
    ROLE_SIZE_ANNOTATION,
)
from rbg_flows.manifests.discovery import (
    CONFIG_KEY,
    MOUNT_PATH,
    VOLUME_NAME,
    discovery_config,
    discovery_configmap,
    discovery_data,
    instance_address,
    mount_discovery,
    port_key,
)
from rbg_flows.manifests.env import inject_env, role_env
from rbg_flows.manifests.hashing import role_revision_hash, role_revision_hashes, spec_revision_hash
from rbg_flows.manifests.labels import (
    group_labels,
    group_unique_key,
    owner_reference,
    role_labels,
    role_revision_label,
    role_selector,
)
from rbg_flows.manifests.podtemplate import finish_pod_template
from rbg_flows.manifests.service import build_headless_service, service_ports
from rbg_flows.manifests.smp import PatchError, strategic_merge_patch
from rbg_flows.manifests.template import leader_worker_templates, resolve_pod_template
from rbg_flows.manifests.workloads import (
    LWS_API_VERSION,
    build_deployment,
    build_leaderworkerset,
    build_role_objects,
    build_statefulset,
    build_workload,
    lws_restart_policy,
)

__all__ = [
    "CONFIG_KEY",
    "CONTROLLER_REVISION_HASH_LABEL",
    "DISABLE_EXCLUSIVE_TOPOLOGY_ANNOTATION",
    "EXCLUSIVE_TOPOLOGY_ANNOTATION",
    "GROUP_NAME_LABEL",
    "GROUP_UNIQUE_KEY_LABEL",
    "LWS_API_VERSION",
    "MOUNT_PATH",
    "POD_INDEX_LABEL",
    "ROLE_LABEL",
    "ROLE_REVISION_LABEL_PREFIX",
    "ROLE_SIZE_ANNOTATION",
    "VOLUME_NAME",
    "PatchError",
    "build_deployment",
    "build_headless_service",
    "build_leaderworkerset",
    "build_role_objects",
    "build_statefulset",
    "build_workload",
    "discovery_config",
    "discovery_configmap",
    "discovery_data",
    "finish_pod_template",
    "group_labels",
    "group_unique_key",
    "inject_env",
    "instance_address",
    "leader_worker_templates",
    "lws_restart_policy",
    "mount_discovery",
    "owner_reference",
    "port_key",
    "resolve_pod_template",
    "role_env",
    "role_labels",
    "role_revision_hash",
    "role_revision_hashes",
    "role_revision_label",
    "role_selector",
    "service_ports",
    "spec_revision_hash",
    "strategic_merge_patch",
]
