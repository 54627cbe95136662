#!/usr/bin/env bash
# Re-record the replay histories from a live run (the workflow shapes of today's code):
#
#   tests/replay/record_scenarios.sh [STATE_DIR]
#
# Starts Temporal, the sim, the worker and the watcher (`rbg-flows dev up`), drives every operation kind
# through the Kubernetes API and the controls (deploy, scale, drift repair, a coordinated upgrade paused
# and resumed, a rollback, an abort, LeaderWorkerSet roles, a dependency chain, an engine runtime profile
# change, a coordinated scale, a failover, a scaling adapter, a group set), records each workflow's
# history into tests/replay/histories/, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
STATE=${1:-$(mktemp -d)}
BIN=.venv/bin
# A fixed cluster id: the histories keep their file names from one recording to the next.
"$BIN/rbg-flows" dev up --state-dir "$STATE" --cluster-id=replay >/dev/null
trap '"$BIN/rbg-flows" dev down --state-dir "$STATE" >/dev/null' EXIT
# shellcheck disable=SC1091
source "$STATE/env"
k() { "$BIN/rbg-flows" sim kubectl -- "$@"; }
ready() { k wait --for=condition=Ready "rbg/$1" --timeout=180s >/dev/null; }
settled() {  # observedGeneration caught up with the spec and Ready
  for _ in $(seq 600); do
    [ "$(k get rbg "$1" -o jsonpath='{.status.observedGeneration}')" = "$(k get rbg "$1" -o jsonpath='{.metadata.generation}')" ] \
      && ready "$1" && return 0
    sleep 0.2
  done
  echo "rbg $1 did not settle" >&2; return 1
}
image() { k patch rbg pd-upgrade --type=json \
  -p "[{\"op\":\"replace\",\"path\":\"/spec/roleTemplates/0/template/spec/containers/0/image\",\"value\":\"lmsysorg/sglang:$1\"}]" >/dev/null; }

k apply -f examples/pd-disaggregation.yaml >/dev/null && ready pd-demo
k patch rbg pd-demo --type=json -p '[{"op":"replace","path":"/spec/roles/1/replicas","value":3}]' >/dev/null
settled pd-demo
k delete deployment pd-demo-router --wait=false >/dev/null   # drift: repaired
sleep 2 && ready pd-demo

k apply -f examples/coordinated-upgrade.yaml >/dev/null && ready pd-upgrade
image v0.5.5
"$BIN/rbg-flows" pause pd-upgrade >/dev/null || true
sleep 2
"$BIN/rbg-flows" resume pd-upgrade >/dev/null || true
settled pd-upgrade
"$BIN/rbg-flows" rollback pd-upgrade --to-revision 1 >/dev/null
settled pd-upgrade
image v0.5.6
sleep 1
"$BIN/rbg-flows" abort pd-upgrade >/dev/null || true
settled pd-upgrade

k apply -f examples/pd-disaggregation-lws.yaml >/dev/null && ready pd-lws
k apply -f examples/dependency-chain.yaml >/dev/null && ready chain

# An engine runtime profile applied with its group, then changed (RollingUpdate): an upgrade of the same
# generation, started by the profile_changed signal.
k apply -f examples/engine-runtime-profile.yaml >/dev/null && ready sglang-pd
first=$(k get rbg sglang-pd -o jsonpath='{.status.currentRevision}')
k patch clusterengineruntimeprofile sglang-pd-runtime --type=json \
  -p '[{"op":"replace","path":"/spec/containers/0/image","value":"rolebasedgroup/rbgs-patio-runtime:v0.5.1"}]' >/dev/null
for _ in $(seq 600); do
  [ "$(k get rbg sglang-pd -o jsonpath='{.status.currentRevision}')" != "$first" ] && ready sglang-pd && break
  sleep 0.2
done

# A coordinated scale: prefill and decode in steps under their scaling rule.
k apply -f examples/coordinated-scaling.yaml >/dev/null && ready pd-scaling
k patch rbg pd-scaling --type=json -p '[{"op":"replace","path":"/spec/roles/0/replicas","value":6},
  {"op":"replace","path":"/spec/roles/1/replicas","value":3}]' >/dev/null
settled pd-scaling

# A failover (a decode pod deleted: the whole group recreated) and a scaling adapter's scale.
k apply -f examples/failover.yaml >/dev/null && ready pd-failover
k delete pod pd-failover-decode-0 --wait=false >/dev/null
sleep 3 && ready pd-failover
k apply -f examples/scaling-adapter.yaml >/dev/null && ready pd-autoscaled
sleep 2
k scale rbgsa pd-autoscaled-decode --replicas=2 >/dev/null
sleep 3 && settled pd-autoscaled

# A RoleBasedGroupSet scaled 2 -> 3 and its template changed: its groups created, then updated one at a time.
k apply -f examples/group-set.yaml >/dev/null
for _ in $(seq 600); do [ "$(k get rbgs pd-fleet -o jsonpath='{.status.readyReplicas}')" = "2" ] && break; sleep 0.2; done
k scale rbgs pd-fleet --replicas=3 >/dev/null
for _ in $(seq 600); do [ "$(k get rbgs pd-fleet -o jsonpath='{.status.readyReplicas}')" = "3" ] && break; sleep 0.2; done
k patch rbgs pd-fleet --type=json \
  -p '[{"op":"replace","path":"/spec/groupTemplate/spec/roles/0/standalonePattern/template/spec/containers/0/image","value":"lmsysorg/sglang:v0.5.5"}]' >/dev/null
for _ in $(seq 900); do
  [ "$(k get rbgs pd-fleet -o jsonpath='{.status.conditions[?(@.type=="Ready")].reason}')" = "AllGroupsReady" ] \
    && [ "$(k get rbgs pd-fleet -o jsonpath='{.status.observedGeneration}')" = "$(k get rbgs pd-fleet -o jsonpath='{.metadata.generation}')" ] && break
  sleep 0.2
done

rm -f tests/replay/histories/*.json
ids=$("$BIN/temporal" workflow list --address "$RBG_TEMPORAL_ADDRESS" -o json | "$BIN/python" -c \
  'import json,sys; print(" ".join(sorted({w["execution"]["workflowId"] for w in json.load(sys.stdin)})))')
# shellcheck disable=SC2086
"$BIN/python" -m tests.replay.record --address "$RBG_TEMPORAL_ADDRESS" $ids
