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
The RBAC rules for our own kinds, shared by the ClusterRole (cluster-wide install) and each Role
(namespaced install). Every rule says why it is there; tests/rbac.py proves them against what the
operator really calls on the Kubernetes stand-in.
*/}}
{{- define "q-operator.namespacedRules" -}}
# Our three kinds: kopf lists and watches them, and patches its finalizer and bookkeeping annotations
# onto them (the engine also patches the q-operator.dev/configmap-hash annotation when a referenced
# ConfigMap changes). No get (kopf works from the watch stream), no update, never create or delete:
# users and GitOps tools own these objects.
- apiGroups: [qbusiness.q-operator.dev]
  resources: [qplugins]
  verbs: [list, watch, patch]
- apiGroups: [qapps.q-operator.dev]
  resources: [qlibraryitems]
  verbs: [list, watch, patch]
- apiGroups: [appflow.q-operator.dev]
  resources: [appflowconnectors]
  verbs: [list, watch, patch]
# Status is a subresource: conditions, observedGeneration, the create-pending marker and the AWS outputs
# (pluginArn, ...) are written there with one patch per reconcile. The operator never writes spec.
- apiGroups: [qbusiness.q-operator.dev]
  resources: [qplugins/status]
  verbs: [patch]
- apiGroups: [qapps.q-operator.dev]
  resources: [qlibraryitems/status]
  verbs: [patch]
- apiGroups: [appflow.q-operator.dev]
  resources: [appflowconnectors/status]
  verbs: [patch]
# Kubernetes Events for every transition a user wants in `kubectl describe` (created, deleted,
# cannot create ...). kopf posts them through the core v1 API only (not events.k8s.io).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# payloadFrom: a QPlugin's OpenAPI schema may live in a ConfigMap; the operator reads it (get) and
# watches ConfigMaps (list, watch) so that an edited schema reaches AWS. Read-only; Secrets are never read.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch]
{{- end }}
