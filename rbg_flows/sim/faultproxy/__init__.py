"""A loopback API fault proxy in front of the sim's kube-apiserver: request classification, fault rules,
header and identity forwarding, the proxy itself, and the client of its control listener."""

from rbg_flows.sim.faultproxy.classify import RequestInfo, classify
from rbg_flows.sim.faultproxy.client import FaultProxyControl
from rbg_flows.sim.faultproxy.headers import (
    Identity,
    forward_request_headers,
    forward_response_headers,
    identity_from_peercert,
)
from rbg_flows.sim.faultproxy.proxy import FaultProxy
from rbg_flows.sim.faultproxy.rules import (
    FAULT_ACTIONS,
    FaultAction,
    FaultInjector,
    FaultRule,
    fault_status,
    status_body,
)

__all__ = [
    "FAULT_ACTIONS",
    "FaultAction",
    "FaultInjector",
    "FaultProxy",
    "FaultProxyControl",
    "FaultRule",
    "Identity",
    "RequestInfo",
    "classify",
    "fault_status",
    "forward_request_headers",
    "forward_response_headers",
    "identity_from_peercert",
    "status_body",
]
