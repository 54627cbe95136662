"""Headless Services of StatefulSet roles."""

from __future__ import annotations

from rbg_flows.manifests import build_headless_service
from tests.unit.test_manifests_examples import UID, pd_rbg

KEY = "8d383b19e5d64f7b2b90f38939baa2584edc25ee"


def test_shape() -> None:
    rbg = pd_rbg()
    assert build_headless_service(rbg, rbg.spec.role("prefill")) == {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "s-pd-demo-prefill",
            "namespace": "inference",
            "labels": {
                "rolebasedgroup.workloads.x-k8s.io/name": "pd-demo",
                "rolebasedgroup.workloads.x-k8s.io/role": "prefill",
                "rolebasedgroup.workloads.x-k8s.io/group-unique-key": KEY,
            },
            "ownerReferences": [
                {
                    "apiVersion": "workloads.x-k8s.io/v1alpha1",
                    "kind": "RoleBasedGroup",
                    "name": "pd-demo",
                    "uid": UID,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {
                "rolebasedgroup.workloads.x-k8s.io/name": "pd-demo",
                "rolebasedgroup.workloads.x-k8s.io/role": "prefill",
            },
            "ports": [{"name": "http-api", "port": 8000, "protocol": "TCP"}],
        },
    }


def test_no_ports_when_the_role_lists_none() -> None:
    rbg = pd_rbg(prefill={"servicePorts": []})
    assert "ports" not in build_headless_service(rbg, rbg.spec.role("prefill"))["spec"]


def test_several_ports_are_all_named() -> None:
    ports = [
        {"port": 8000},
        {"name": "metrics", "port": 9000, "targetPort": "metrics", "appProtocol": "http"},
        {"port": 5000, "protocol": "UDP", "nodePort": 30000},
    ]
    rbg = pd_rbg(prefill={"servicePorts": ports})
    assert build_headless_service(rbg, rbg.spec.role("prefill"))["spec"]["ports"] == [
        {"name": "port8000", "port": 8000, "protocol": "TCP"},
        {"name": "metrics", "port": 9000, "targetPort": "metrics", "protocol": "TCP", "appProtocol": "http"},
        {"name": "port5000", "port": 5000, "protocol": "UDP"},
    ]


def test_a_single_unnamed_port_stays_unnamed() -> None:
    rbg = pd_rbg(prefill={"servicePorts": [{"port": 8000}]})
    assert build_headless_service(rbg, rbg.spec.role("prefill"))["spec"]["ports"] == [
        {"port": 8000, "protocol": "TCP"}
    ]
