{{/* Chart name, at most 63 characters. */}}
{{- define "qlik-license-reclaimer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name, plus the chart name unless the release name contains it.
Release name qlik-license-reclaimer gives the object names of deploy/.
*/}}
{{- define "qlik-license-reclaimer.fullname" -}}
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

{{- define "qlik-license-reclaimer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "qlik-license-reclaimer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qlik-license-reclaimer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "qlik-license-reclaimer.labels" -}}
helm.sh/chart: {{ include "qlik-license-reclaimer.chart" . }}
{{ include "qlik-license-reclaimer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: qlik-license-reclaimer
{{- end }}

{{- define "qlik-license-reclaimer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "qlik-license-reclaimer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "qlik-license-reclaimer.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* More than one replica: leader election decides which one runs policies. */}}
{{- define "qlik-license-reclaimer.leaderElect" -}}
{{- if and .Values.controller.enabled (gt (int .Values.controller.replicas) 1) }}true{{ end }}
{{- end }}

{{/* The namespaces of cronjob.policies, as a JSON list. */}}
{{- define "qlik-license-reclaimer.cronjobNamespaces" -}}
{{- $out := list }}
{{- if .Values.cronjob.enabled }}
{{- range .Values.cronjob.policies }}
{{- $out = append $out (first (splitList "/" .ref)) }}
{{- end }}
{{- end }}
{{- toJson (uniq $out) }}
{{- end }}

{{/* Namespace of the example policy: its own setting, else the first watch namespace, else the release's. */}}
{{- define "qlik-license-reclaimer.exampleNamespace" -}}
{{- if .Values.examplePolicy.namespace }}
{{- .Values.examplePolicy.namespace }}
{{- else if .Values.watchNamespaces }}
{{- first .Values.watchNamespaces }}
{{- else }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
Namespaces where the operator may read Secrets (a RoleBinding to the -secrets ClusterRole in each), as a JSON list:
the watch namespaces (or, when it watches all, secretNamespaces), and those of the CronJobs' and example policies.
*/}}
{{- define "qlik-license-reclaimer.secretNamespaces" -}}
{{- $out := list }}
{{- if .Values.watchNamespaces }}
{{- $out = concat $out .Values.watchNamespaces }}
{{- else }}
{{- $out = concat $out .Values.secretNamespaces }}
{{- end }}
{{- $out = concat $out (include "qlik-license-reclaimer.cronjobNamespaces" . | fromJsonArray) }}
{{- if .Values.examplePolicy.enabled }}
{{- $out = append $out (include "qlik-license-reclaimer.exampleNamespace" .) }}
{{- end }}
{{- toJson (uniq $out) }}
{{- end }}

{{/*
Policies are read cluster-wide (a ClusterRoleBinding) only when the controller watches all namespaces, that is when
watchNamespaces is empty.
*/}}
{{- define "qlik-license-reclaimer.clusterWidePolicies" -}}
{{- if and .Values.controller.enabled (eq (len .Values.watchNamespaces) 0) }}true{{ end }}
{{- end }}

{{/* Otherwise, the namespaces where policies are read (a RoleBinding to the ClusterRole in each), as a JSON list. */}}
{{- define "qlik-license-reclaimer.policyNamespaces" -}}
{{- $out := list }}
{{- if .Values.controller.enabled }}
{{- $out = concat $out .Values.watchNamespaces }}
{{- end }}
{{- $out = concat $out (include "qlik-license-reclaimer.cronjobNamespaces" . | fromJsonArray) }}
{{- toJson (uniq $out) }}
{{- end }}

{{/* Combinations of values that cannot work, refused with a message that says what to change. */}}
{{- define "qlik-license-reclaimer.validate" -}}
{{- if and .Values.watchNamespaces .Values.secretNamespaces }}
{{- fail "secretNamespaces is for watchNamespaces: [] (all namespaces). With watchNamespaces set, Secrets are readable in exactly those namespaces: leave secretNamespaces empty." }}
{{- end }}
{{- if and .Values.controller.enabled .Values.watchNamespaces .Values.examplePolicy.enabled }}
{{- $ns := include "qlik-license-reclaimer.exampleNamespace" . }}
{{- if not (has $ns .Values.watchNamespaces) }}
{{- fail (printf "examplePolicy.namespace %q is not among watchNamespaces %v: the controller would never run it" $ns .Values.watchNamespaces) }}
{{- end }}
{{- end }}
{{- if and .Values.cronjob.enabled (not .Values.cronjob.policies) }}
{{- fail "cronjob.enabled: list the policies to run in cronjob.policies, as [{ref: NAMESPACE/NAME}]" }}
{{- end }}
{{- $refs := list }}
{{- range .Values.cronjob.policies }}
{{- if has .ref $refs }}
{{- fail (printf "cronjob.policies lists %s twice" .ref) }}
{{- end }}
{{- $refs = append $refs .ref }}
{{- end }}
{{- end }}

{{/* Name of the CronJob of a policy reference (at most 52 characters, the CronJob limit). */}}
{{- define "qlik-license-reclaimer.cronjobName" -}}
{{- $name := printf "%s-%s" .fullname (replace "/" "-" .ref) }}
{{- if le (len $name) 52 }}
{{- $name }}
{{- else }}
{{- printf "%s-%s" ($name | trunc 43 | trimSuffix "-") (sha256sum .ref | trunc 8) }}
{{- end }}
{{- end }}

{{/* Environment of every container: the pod's identity (Lease holder, Event reporter), log settings. */}}
{{- define "qlik-license-reclaimer.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- with .Values.logLevel }}
- name: RUST_LOG
  value: {{ . | quote }}
{{- end }}
{{- end }}
