{{/* Chart name, overridable. */}}
{{- define "q-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart> unless the release name already contains the chart name. */}}
{{- define "q-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "q-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "q-operator.labels" -}}
helm.sh/chart: {{ include "q-operator.chart" . }}
{{ include "q-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: q-operator
{{- end }}

{{/* Labels that select the operator pods. */}}
{{- define "q-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "q-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "q-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "q-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "q-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Refuse combinations that would run two active operators or none. */}}
{{- define "q-operator.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.peering.enabled) }}
{{- fail "replicas > 1 needs peering.enabled=true: without kopf peering every replica would reconcile the same resources" }}
{{- end }}
{{- if not (has .Values.operator.logFormat (list "json" "text")) }}
{{- fail "operator.logFormat must be json or text" }}
{{- end }}
{{- end }}

{{/*
The namespaced RBAC rules, shared by the ClusterRole (cluster-wide install) and each Role (namespaced
install). The rules for our kinds are generated from the kind registry into files/kind-rules.yaml
(`make crds`); the engine's own needs follow. Every rule says why it is there; tests/rbac.py proves
them against what the operator really calls.
*/}}
{{- define "q-operator.namespacedRules" -}}
{{ .Files.Get "files/kind-rules.yaml" | trim }}
# Kubernetes Events for every transition a user wants in `kubectl describe` (created, deleted,
# cannot create ...). kopf posts them through the core v1 API only (not events.k8s.io).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# `...From` fields (a plugin's payloadFrom, say): a spec value may live in a ConfigMap; the operator
# reads it (get) and watches ConfigMaps (list, watch) so that an edited value reaches AWS. Read-only;
# Secrets are never read.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch]
{{- end }}
