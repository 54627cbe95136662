"""The annotations through which faults reach the node simulator (the only channel, so faults work from
any process and against any cluster the simulator drives)."""

PREFIX = "sim.rbg.x-k8s.io"
# Pod: each new value is one container crash (restartCount + 1, unready until it "restarts").
CRASH = f"{PREFIX}/crash"
# Pod: "true" fails the pod (phase Failed), as a kubelet reports a pod whose containers exited.
FAIL = f"{PREFIX}/fail"
# Pod: "true" holds the pod unready until the annotation is removed.
HOLD = f"{PREFIX}/hold"
# Node: "true" stops the node's heartbeats (its kubelet is gone); removing it brings the node back.
NODE_DOWN = f"{PREFIX}/down"
# Node: marks nodes registered by the simulator.
MANAGED = f"{PREFIX}/managed"
