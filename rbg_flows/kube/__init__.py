"""The Kubernetes gateway: a small async JSON client every part of rbg_flows talks through."""
