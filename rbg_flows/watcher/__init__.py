"""The kopf watcher: thin handlers that turn Kubernetes changes into Temporal signals, nothing more."""
