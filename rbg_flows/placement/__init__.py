"""Topology-aware placement: the interconnect model of a cluster, and the choice of domains for a group.

Pure: a snapshot of nodes and pods in, a decision out. The activity that reads the cluster, and the
ledger that serialises decisions across workers, live in `rbg_flows.activities.placement`.
"""
