{{/* Name of the chart, overridable. */}}
{{- define "renku-env-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects: <release>-<chart>, or the release name if it contains the chart name. */}}
{{- define "renku-env-operator.fullname" -}}
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

{{/* Cluster-scoped objects have no namespace: include it so two releases cannot collide. */}}
{{- define "renku-env-operator.clusterName" -}}
{{- printf "%s-%s" .Release.Namespace (include "renku-env-operator.fullname" .) | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "renku-env-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "renku-env-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "renku-env-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "renku-env-operator.labels" -}}
helm.sh/chart: {{ include "renku-env-operator.chart" . }}
{{ include "renku-env-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: renku
{{- end }}

{{- define "renku-env-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "renku-env-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository:tag, with @digest when one is given. */}}
{{- define "renku-env-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Namespaces watched for GlobalEnvironments (namespaced mode only), as a JSON list. */}}
{{- define "renku-env-operator.watchNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- toJson .Values.watchNamespaces }}
{{- else }}
{{- toJson (list .Release.Namespace) }}
{{- end }}
{{- end }}

{{/* Namespace of the smoke pods: its own, never Renku's (the release namespace). */}}
{{- define "renku-env-operator.smokeNamespace" -}}
{{- default (printf "%s-smoke" .Release.Namespace | trunc 63 | trimSuffix "-") .Values.smoke.namespace }}
{{- end }}

{{- define "renku-env-operator.peeringName" -}}
{{- default (include "renku-env-operator.fullname" .) .Values.ha.peeringName }}
{{- end }}

{{/* Name of the Secret with the Renku credentials; empty when there is none. */}}
{{- define "renku-env-operator.credentialsSecret" -}}
{{- if .Values.renku.credentials.create.enabled }}
{{- printf "%s-renku-credentials" (include "renku-env-operator.fullname" .) }}
{{- else }}
{{- .Values.renku.credentials.existingSecret }}
{{- end }}
{{- end }}

{{/*
Checks across values that a JSON schema cannot express with a useful message.
Included from the Deployment, so that every render runs them.
*/}}
{{- define "renku-env-operator.validate" -}}
{{- $create := .Values.renku.credentials.create }}
{{- if and $create.enabled .Values.renku.credentials.existingSecret }}
{{- fail "renku.credentials: set either existingSecret or create.enabled, not both" }}
{{- end }}
{{- if $create.enabled }}
{{- $client := or $create.clientId $create.clientSecret $create.tokenUrl }}
{{- if and $create.token $client }}
{{- fail "renku.credentials.create: set either token, or clientId/clientSecret/tokenUrl, not both" }}
{{- end }}
{{- if not (or $create.token (and $create.clientId $create.clientSecret $create.tokenUrl)) }}
{{- fail "renku.credentials.create: set token, or all of clientId, clientSecret and tokenUrl" }}
{{- end }}
{{- end }}
{{- if and .Values.rbac.clusterWide .Values.watchNamespaces }}
{{- fail "watchNamespaces must be empty with rbac.clusterWide=true (every namespace is watched)" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not (and .Values.metrics.port .Values.metrics.service.enabled)) }}
{{- fail "metrics.serviceMonitor needs metrics.port > 0 and metrics.service.enabled" }}
{{- end }}
{{- if eq (include "renku-env-operator.smokeNamespace" .) .Release.Namespace }}
{{- fail (printf "smoke.namespace must not be the release namespace %q: smoke pods run images and commands that namespace users choose, keep them away from Renku's services (leave it empty for %q)" .Release.Namespace (printf "%s-smoke" .Release.Namespace)) }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (not (include "renku-env-operator.apiServerCIDRs" . | fromJsonArray)) }}
{{- fail "networkPolicy.apiServer.cidrs (or smoke.networkPolicy.apiServerCIDRs) is required with networkPolicy.enabled (the default): the API server's addresses (kubectl get endpoints kubernetes), e.g. [172.18.0.2/32]; without them the operator could not reach its API server. networkPolicy.enabled=false drops the operator's NetworkPolicy instead" }}
{{- end }}
{{- if and .Values.ha.enabled (ge (int .Values.ha.podDisruptionBudget.minAvailable) (int .Values.ha.replicas)) }}
{{- fail "ha.podDisruptionBudget.minAvailable must be lower than ha.replicas, or no node could ever be drained" }}
{{- end }}
{{- end }}

{{/* Rules on GlobalEnvironments and Events, shared by the Role and the ClusterRole. */}}
{{- define "renku-env-operator.rules.globalenvironments" -}}
# GlobalEnvironments: watch them, and patch finalizers, kopf's annotations and status.
- apiGroups: [renku.io]
  resources: [globalenvironments]
  verbs: [get, list, watch, patch]
- apiGroups: [renku.io]
  resources: [globalenvironments/status]
  verbs: [get, patch]
# Events on GlobalEnvironments (kopf posts core Events; events.k8s.io for newer clients).
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/* The operator's ServiceAccount as an RBAC subject (a list item). */}}
{{- define "renku-env-operator.subject" -}}
- kind: ServiceAccount
  name: {{ include "renku-env-operator.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/* The API server's addresses for the operator's egress: its own, else the smoke policy's. */}}
{{- define "renku-env-operator.apiServerCIDRs" -}}
{{- .Values.networkPolicy.apiServer.cidrs | default .Values.smoke.networkPolicy.apiServerCIDRs | default list | toJson }}
{{- end }}
