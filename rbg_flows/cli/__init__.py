"""Entry points and user tools: `rbg-flows` (worker, watcher, dev, the sim, controls) and `kubectl-rbg`."""
