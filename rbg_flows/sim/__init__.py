"""The sim: a real Kubernetes control plane built from its Go modules, with simulated GPU nodes.

Everything above the kubelet is the real thing (API server, controllers, scheduler, etcd); only the
nodes and their kubelets are simulated, through the public API, as KWOK does.
"""
