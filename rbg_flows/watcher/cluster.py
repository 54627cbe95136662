"""The watcher's own Kubernetes reads, through the official `kubernetes` client: the credentials kopf logs
in with, and the RoleBasedGroups a resync compares the running entities against.

The official client is used because it runs `exec` credential plugins (EKS, GKE, AKS) and re-reads
rotated service-account tokens; kopf's built-in kubeconfig login does neither. It is imported inside the
functions so that importing the watcher loads no client until the process logs in.
"""

from __future__ import annotations

from typing import Any

import kopf

from rbg_flows.api.common import GROUP, VERSION_V1ALPHA2
from rbg_flows.watcher.resync import ExistingGroup

# The stored version: listing and watching it needs no conversion webhook (the signaller converts to the
# internal form in-process), so the watcher goes on if the webhook is down.
RBG = (GROUP, VERSION_V1ALPHA2, "rolebasedgroups")
PAGE = 500
REQUEST_TIMEOUT = 30.0


def load_config(kubeconfig: str | None) -> Any:
    """A `kubernetes.client.Configuration`: an explicit kubeconfig, else the in-cluster service account,
    else the default kubeconfig (the worker's order too). Loading runs the exec plugin, if any."""
    from kubernetes import client, config

    cfg = client.Configuration()
    if kubeconfig:
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
        return cfg
    try:
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    return cfg


def connection_info(cfg: Any) -> kopf.ConnectionInfo:
    """What kopf needs to talk to the API server, taken from a loaded client configuration."""
    # Asking for the key (not reading api_key) runs the refresh hook an expiring exec token installs.
    # Newer clients keep the token under BearerToken, older ones under authorization.
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix("authorization")
    scheme, token = _split_authorization(header)
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        username=cfg.username or None,
        password=cfg.password or None,
        scheme=scheme,
        token=token,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )


def _split_authorization(header: str | None) -> tuple[str | None, str | None]:
    if not header:
        return None, None
    scheme, sep, token = header.partition(" ")
    return (scheme, token) if sep else (None, scheme)


def login(kubeconfig: str | None) -> kopf.ConnectionInfo:
    return connection_info(load_config(kubeconfig))


def get_group(kubeconfig: str | None, namespace: str, name: str) -> dict[str, Any] | None:
    """One RoleBasedGroup (stored version), or None when it is gone. Blocking: call it in a thread."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    with client.ApiClient(load_config(kubeconfig)) as api:
        custom: Any = client.CustomObjectsApi(api)
        try:
            obj: dict[str, Any] = custom.get_namespaced_custom_object(
                RBG[0], RBG[1], namespace, RBG[2], name, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return obj


def list_groups(kubeconfig: str | None, namespaces: list[str] | None) -> list[ExistingGroup]:
    """Every RoleBasedGroup, cluster-wide (`namespaces` None) or in these namespaces. Blocking: call it in
    a thread. Raises on any failure, so a partial list is never taken for the truth."""
    from kubernetes import client

    cfg = load_config(kubeconfig)
    found: list[ExistingGroup] = []
    with client.ApiClient(cfg) as api:
        custom: Any = client.CustomObjectsApi(api)  # its list calls are typed as returning object
        for ns in namespaces if namespaces is not None else [None]:
            token: str | None = None
            while True:
                kwargs: dict[str, Any] = {"limit": PAGE, "_request_timeout": REQUEST_TIMEOUT}
                if token:
                    kwargs["_continue"] = token
                page: dict[str, Any]
                if ns is None:
                    page = custom.list_cluster_custom_object(*RBG, **kwargs)
                else:
                    page = custom.list_namespaced_custom_object(RBG[0], RBG[1], ns, RBG[2], **kwargs)
                for item in page.get("items") or []:
                    meta = item["metadata"]
                    found.append(ExistingGroup(meta["namespace"], meta["name"], meta["uid"]))
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    break
    return found
