{{/*
The chart mirrors the kustomize base (deploy/base) object for object: each template is the base's file
with only the values templated in, and tests/unit/test_helm.py renders both and diffs them. A change to
the base is made here too, in the same commit.
*/}}

{{/* metadata.labels: the base's, plus Helm's own (which the diff ignores). Call with (list $ "component"). */}}
{{- define "rbg-flows.labels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: rbg-flows
{{- with index . 1 }}
app.kubernetes.io/component: {{ . }}
{{- end }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/managed-by: {{ $.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $.Chart.Name $.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "rbg-flows.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The worker's namespaced rights (deploy/base/rbac/worker.yaml): a ClusterRole, or a Role per watched namespace. */}}
{{- define "rbg-flows.workerRules" -}}
# Status writes read the group first (uid check); a rollback rewrites the spec with a JSON patch.
- apiGroups: ["workloads.x-k8s.io"]
  resources: ["rolebasedgroups"]
  verbs: ["get", "patch"]
# A RoleBasedGroupSet's groups: applied (created or updated) from its template, deleted on scale-in;
# the set read, and its status written.
- apiGroups: ["workloads.x-k8s.io"]
  resources: ["rolebasedgroups"]
  verbs: ["create", "delete"]
- apiGroups: ["workloads.x-k8s.io"]
  resources: ["rolebasedgroupsets"]
  verbs: ["get"]
- apiGroups: ["workloads.x-k8s.io"]
  resources: ["rolebasedgroupsets/status"]
  verbs: ["patch"]
# Status is server-side applied to the subresource.
- apiGroups: ["workloads.x-k8s.io"]
  resources: ["rolebasedgroups/status"]
  verbs: ["patch"]
# Scaling adapters (roles with scalingAdapter.enable): listed by group label, created, deleted when
# the role drops them, annotated with the generation the role took, and their status mirrored.
- apiGroups: ["workloads.x-k8s.io"]
  resources: ["rolebasedgroupscalingadapters"]
  verbs: ["get", "list", "create", "patch", "delete"]
- apiGroups: ["workloads.x-k8s.io"]
  resources: ["rolebasedgroupscalingadapters/status"]
  verbs: ["patch"]
# Server-side apply is a PATCH, and the API server also checks create when the apply makes the
# object; prune_roles reads and deletes the workloads of roles the spec dropped.
- apiGroups: ["apps"]
  resources: ["statefulsets", "deployments"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: ["leaderworkerset.x-k8s.io"]
  resources: ["leaderworkersets"]
  verbs: ["get", "create", "patch", "delete"]
# Gang scheduling (spec.podGroupPolicy): the group's PodGroup (scheduler-plugins, Volcano) or
# Workload (Kubernetes' own) applied, re-created when it resizes, deleted when the policy goes.
- apiGroups: ["scheduling.x-k8s.io", "scheduling.volcano.sh"]
  resources: ["podgroups"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: ["scheduling.k8s.io"]
  resources: ["workloads"]
  verbs: ["get", "create", "delete"]
# Headless Services (applied, pruned with their role) and the discovery ConfigMap (applied).
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create", "patch"]
# One revision per spec: listed by label, created, read, pruned (and recreated on a rollback).
- apiGroups: ["apps"]
  resources: ["controllerrevisions"]
  verbs: ["get", "list", "create", "delete"]
# The waits delete an old-template pod that never gets Ready and holds a StatefulSet rollout.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["delete"]
# Events on the group (UpgradeSucceeded, ...), posted through the core API.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* The watcher's namespaced rights (deploy/base/rbac/watcher.yaml). */}}
{{- define "rbg-flows.watcherRules" -}}
# kopf's watch of the groups, the resync's list, and its read of a group no entity serves.
- apiGroups: ["workloads.x-k8s.io"]
  resources: ["rolebasedgroups"]
  verbs: ["get", "list", "watch"]
# A set's changes start or signal its workflow.
- apiGroups: ["workloads.x-k8s.io"]
  resources: ["rolebasedgroupsets"]
  verbs: ["list", "watch"]
# A scale of a group's scaling adapter (kubectl scale rbgsa, an HPA) is signalled to the group.
- apiGroups: ["workloads.x-k8s.io"]
  resources: ["rolebasedgroupscalingadapters"]
  verbs: ["list", "watch"]
# Failover: the groups' pods (by label); a restart, a Failed phase or a deletion is signalled.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Drift: kopf watches the workloads of the groups (by label).
- apiGroups: ["apps"]
  resources: ["statefulsets", "deployments"]
  verbs: ["list", "watch"]
- apiGroups: ["leaderworkerset.x-k8s.io"]
  resources: ["leaderworkersets"]
  verbs: ["list", "watch"]
# kopf posts a Warning event on an object when a handler fails.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* The pod's optional Temporal credentials: the env Secret and the mTLS Secret. */}}
{{- define "rbg-flows.envFrom" -}}
- configMapRef: {name: rbg-flows-config}
{{- with .Values.temporal.secretName }}
# Temporal Cloud: RBG_TEMPORAL_API_KEY and friends (see README); absent on self-hosted Temporal.
- secretRef: {name: {{ . }}, optional: true}
{{- end }}
{{- end -}}
