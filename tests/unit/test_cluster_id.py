"""Cluster ids: what names an installation, and how workflow ids and task queues carry it (pure)."""

from __future__ import annotations

import pytest

from rbg_flows.messages import RbgKey, check_cluster_id, cluster_id_from_uid, task_queue_for


def test_the_default_cluster_id_is_the_start_of_the_kube_system_uid() -> None:
    assert cluster_id_from_uid("3F2B9C1A-7d4e-4b8a-9c0d-1e2f3a4b5c6d") == "3f2b9c1a"


@pytest.mark.parametrize("bad", ["", "a.b", "Prod", "-a", "a-", "x" * 33, "a_b"])
def test_a_cluster_id_is_a_short_dns_label(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid cluster id"):
        check_cluster_id(bad)
    assert check_cluster_id("eu-west-1") == "eu-west-1"


def test_ids_and_task_queues_carry_the_cluster() -> None:
    key = RbgKey(cluster="3f2b9c1a", namespace="ns", name="pd.demo")
    assert key.workflow_id == "rbg.3f2b9c1a.ns.pd.demo"
    assert key.operation_id("upgrade", 3) == "rbg.3f2b9c1a.ns.pd.demo.upgrade.3"
    assert RbgKey.parse(key.workflow_id) == key  # a name may have dots; cluster and namespace have none
    assert RbgKey.parse("rbg.ns.g") is None and RbgKey.parse("other.c.ns.g") is None
    assert task_queue_for("3f2b9c1a") == "rbg-flows.3f2b9c1a"
