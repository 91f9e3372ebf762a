{{/*
Names. Kubernetes names are capped at 63 characters; suffixes such as
"-metrics" or "-migrate" are added by the templates, so the base is cut at 50.
*/}}
{{- define "mailgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 50 | trimSuffix "-" }}
{{- end }}

{{- define "mailgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mailgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "mailgate.labels" -}}
helm.sh/chart: {{ include "mailgate.chart" . }}
{{ include "mailgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mailgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "mailgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mailgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
A component's labels and selector labels. Call with
(dict "root" $ "component" "api").
*/}}
{{- define "mailgate.componentLabels" -}}
{{ include "mailgate.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mailgate.componentSelectorLabels" -}}
{{ include "mailgate.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mailgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mailgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference. A registry from global.imageRegistry (an umbrella
chart's mirror) or image.registry replaces the one image.repository starts
with, if any: ghcr.io/mailgate/mailgate becomes <registry>/mailgate/mailgate.
*/}}
{{- define "mailgate.image" -}}
{{- $repository := .Values.image.repository }}
{{- $registry := (.Values.global).imageRegistry | default .Values.image.registry }}
{{- if $registry }}
{{- $parts := splitList "/" $repository }}
{{- $first := first $parts }}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq "localhost" $first)) }}
{{- $repository = rest $parts | join "/" }}
{{- end }}
{{- $repository = printf "%s/%s" (trimSuffix "/" $registry) $repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* imagePullSecrets: global.imagePullSecrets (names or {name: ...}) then imagePullSecrets. */}}
{{- define "mailgate.imagePullSecrets" -}}
{{- $secrets := list }}
{{- range concat ((.Values.global).imagePullSecrets | default list) .Values.imagePullSecrets }}
{{- if kindIs "string" . }}
{{- $secrets = append $secrets (dict "name" .) }}
{{- else }}
{{- $secrets = append $secrets . }}
{{- end }}
{{- end }}
{{- with $secrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
"true" when the UIDs and GIDs are left to the platform: OpenShift's
restricted SCC assigns them per namespace and refuses fixed ones.
global.compatibility.openshift.adaptSecurityContext is auto (when the cluster
serves security.openshift.io/v1), force or disabled, as in Bitnami's charts.
*/}}
{{- define "mailgate.adaptSecurityContext" -}}
{{- $mode := ((((.Values.global).compatibility).openshift).adaptSecurityContext) | default "auto" }}
{{- if or (eq $mode "force") (and (eq $mode "auto") (.Capabilities.APIVersions.Has "security.openshift.io/v1")) }}true{{ end }}
{{- end }}

{{/*
Seconds in a Go duration of whole units (90s, 1m30s, 2h, 1500ms), rounded
up: the chart derives terminationGracePeriodSeconds from the durations the
gateway reads.
*/}}
{{- define "mailgate.durationSeconds" -}}
{{- $ms := 0 }}
{{- range regexFindAll "[0-9.]+(ms|h|m|s)" . -1 }}
{{- $n := regexFind "^[0-9.]+" . | float64 }}
{{- $unit := trimPrefix (regexFind "^[0-9.]+" .) . }}
{{- $factor := get (dict "h" 3600000 "m" 60000 "s" 1000 "ms" 1) $unit }}
{{- $ms = addf $ms (mulf $n $factor) }}
{{- end }}
{{- divf $ms 1000 | ceil | int }}
{{- end }}

{{/*
A component's terminationGracePeriodSeconds: the value given, or what the
process needs to exit on its own (MAILGATE_DRAIN_DELAY for the API, then
MAILGATE_SHUTDOWN_GRACE) plus 5 s. A value below that need fails the render:
the kubelet would kill the pod mid-drain. Call with (dict "root" $ "component" "api").
*/}}
{{- define "mailgate.terminationGracePeriodSeconds" -}}
{{- $v := .root.Values }}
{{- $need := include "mailgate.durationSeconds" $v.config.shutdownGrace | int }}
{{- if eq .component "api" }}
{{- $need = add $need (include "mailgate.durationSeconds" $v.config.drainDelay | int) }}
{{- end }}
{{- $given := (index $v .component).terminationGracePeriodSeconds }}
{{- if kindIs "invalid" $given }}
{{- add $need 5 }}
{{- else if lt (int $given) $need }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) is shorter than the %d s the process needs to exit (config.drainDelay + config.shutdownGrace for the API, config.shutdownGrace for workers)" .component (int $given) $need) }}
{{- else }}
{{- $given }}
{{- end }}
{{- end }}

{{/* The Secret the pods read: the chart's own or existingSecret. */}}
{{- define "mailgate.secretName" -}}
{{- default (include "mailgate.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/* "true" when the chart manages the Secret, empty otherwise. */}}
{{- define "mailgate.chartSecret" -}}
{{- if not .Values.secret.existingSecret }}true{{ end }}
{{- end }}

{{/*
Whether a Secret item is there to reference. Call with
(dict "root" $ "item" "smtpUrl"). With existingSecret every item may be there
(references to items other than databaseUrl are optional); with the chart's
Secret only the items that have a value.
*/}}
{{- define "mailgate.hasSecretItem" -}}
{{- if .root.Values.secret.existingSecret }}true{{ else if (index .root.Values.secret.values .item) }}true{{ end }}
{{- end }}

{{- define "mailgate.mountJwtPublicKeys" -}}
{{- if or .Values.jwtPublicKeys.mount (and (not .Values.secret.existingSecret) .Values.secret.values.jwtPublicKeys) }}true{{ end }}
{{- end }}

{{/*
One env var from a Secret item. Call with
(dict "root" $ "name" "MAILGATE_SMTP_URL" "item" "smtpUrl" "secret" NAME "optional" true).
*/}}
{{- define "mailgate.secretEnv" -}}
{{- if include "mailgate.hasSecretItem" . }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ index .root.Values.secret.keys .item }}
      {{- if and .root.Values.secret.existingSecret .optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}

{{/*
The environment of the api and worker containers. Call with
(dict "root" $ "component" "api").
*/}}
{{- define "mailgate.env" -}}
{{- $root := .root }}
{{- $secret := include "mailgate.secretName" $root }}
- name: MAILGATE_HTTP_ADDR
  value: {{ printf ":%d" (int $root.Values.ports.http) | quote }}
- name: MAILGATE_ADMIN_ADDR
  value: {{ printf ":%d" (int $root.Values.ports.admin) | quote }}
- name: MAILGATE_DATABASE_ROLE
  value: {{ $root.Values.config.databaseRole | quote }}
- name: MAILGATE_WORKERS
  value: {{ $root.Values.config.workers | quote }}
- name: MAILGATE_SMTP_MAX_CONNECTIONS
  value: {{ $root.Values.config.smtpMaxConnections | quote }}
- name: MAILGATE_SHUTDOWN_GRACE
  value: {{ $root.Values.config.shutdownGrace | quote }}
- name: MAILGATE_RATE_LIMIT
  value: {{ $root.Values.config.rateLimit | quote }}
- name: MAILGATE_RATE_BURST
  value: {{ $root.Values.config.rateBurst | quote }}
- name: MAILGATE_REQUEST_TIMEOUT
  value: {{ $root.Values.config.requestTimeout | quote }}
- name: MAILGATE_DRAIN_DELAY
  value: {{ $root.Values.config.drainDelay | quote }}
{{- with $root.Values.config.jwtIssuer }}
- name: MAILGATE_JWT_ISSUER
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.config.jwtAudience }}
- name: MAILGATE_JWT_AUDIENCE
  value: {{ . | quote }}
{{- end }}
{{- include "mailgate.secretEnv" (dict "root" $root "name" "MAILGATE_DATABASE_URL" "item" "databaseUrl" "secret" $secret "optional" false) }}
{{- /* Each component gets only the credentials it uses. */}}
{{- if eq .component "api" }}
{{- if include "mailgate.mountJwtPublicKeys" $root }}
- name: MAILGATE_JWT_PUBLIC_KEYS
  value: {{ printf "%s/%s" (trimSuffix "/" $root.Values.jwtPublicKeys.mountPath) $root.Values.secret.keys.jwtPublicKeys | quote }}
{{- end }}
{{- include "mailgate.secretEnv" (dict "root" $root "name" "MAILGATE_JWT_SECRET" "item" "jwtSecret" "secret" $secret "optional" true) }}
{{- end }}
{{- if eq .component "worker" }}
{{- include "mailgate.secretEnv" (dict "root" $root "name" "MAILGATE_SMTP_URL" "item" "smtpUrl" "secret" $secret "optional" true) }}
{{- with $root.Values.config.inboundRetention }}
- name: MAILGATE_INBOUND_RETENTION
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- /* Workers mint and check address tokens; the listener accepts for the domains. */}}
{{- if or (eq .component "worker") (eq .component "inbound") }}
{{- with $root.Values.config.bounceDomain }}
- name: MAILGATE_BOUNCE_DOMAIN
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.config.replyDomain }}
- name: MAILGATE_REPLY_DOMAIN
  value: {{ . | quote }}
{{- end }}
{{- include "mailgate.secretEnv" (dict "root" $root "name" "MAILGATE_VERP_KEYS" "item" "verpKeys" "secret" $secret "optional" true) }}
{{- end }}
{{- if eq .component "inbound" }}
- name: MAILGATE_INBOUND_ADDR
  value: {{ printf ":%d" (int $root.Values.ports.smtp) | quote }}
{{- with $root.Values.inbound.hostname }}
- name: MAILGATE_INBOUND_HOSTNAME
  value: {{ . | quote }}
{{- end }}
{{- if $root.Values.inbound.tlsSecret }}
- name: MAILGATE_INBOUND_TLS_CERT
  value: /etc/mailgate/inbound-tls/tls.crt
- name: MAILGATE_INBOUND_TLS_KEY
  value: /etc/mailgate/inbound-tls/tls.key
{{- end }}
{{- end }}
{{- include "mailgate.secretEnv" (dict "root" $root "name" "MAILGATE_RIVER_UI_USERNAME" "item" "riverUiUsername" "secret" $secret "optional" true) }}
{{- include "mailgate.secretEnv" (dict "root" $root "name" "MAILGATE_RIVER_UI_PASSWORD" "item" "riverUiPassword" "secret" $secret "optional" true) }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with (index $root.Values .component).extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The pod security context: fixed, but for the IDs OpenShift assigns. */}}
{{- define "mailgate.podSecurityContext" -}}
runAsNonRoot: true
{{- if not (include "mailgate.adaptSecurityContext" .) }}
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The container security context: fixed, but for the IDs OpenShift assigns. */}}
{{- define "mailgate.containerSecurityContext" -}}
runAsNonRoot: true
{{- if not (include "mailgate.adaptSecurityContext" .) }}
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
{{- end }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Topology spread constraints of a component: the explicit list, or zone and
node spreading. Call with (dict "root" $ "component" "api").
*/}}
{{- define "mailgate.topologySpread" -}}
{{- $c := index .root.Values .component }}
{{- if $c.topologySpreadConstraints }}
{{- toYaml $c.topologySpreadConstraints }}
{{- else if .root.Values.topologySpread.enabled }}
{{- $ctx := . }}
{{- range .root.Values.topologySpread.topologyKeys }}
- maxSkew: {{ $ctx.root.Values.topologySpread.maxSkew }}
  topologyKey: {{ . }}
  whenUnsatisfiable: {{ $ctx.root.Values.topologySpread.whenUnsatisfiable }}
  labelSelector:
    matchLabels:
      {{- include "mailgate.componentSelectorLabels" $ctx | nindent 6 }}
  matchLabelKeys:
    - pod-template-hash
{{- end }}
{{- end }}
{{- end }}

{{/* Label matchers that scope the alerts to this release's metrics. */}}
{{- define "mailgate.alertSelector" -}}
{{- if .Values.metrics.prometheusRule.selector }}
{{- .Values.metrics.prometheusRule.selector }}
{{- else }}
{{- printf "job=%q,namespace=%q" (printf "%s-metrics" (include "mailgate.fullname" .)) .Release.Namespace }}
{{- end }}
{{- end }}
