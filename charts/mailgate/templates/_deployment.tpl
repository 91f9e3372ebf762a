{{/*
A Mailgate Deployment: `mailgate serve --role <component>`. Call with
(dict "root" $ "component" "api"|"worker"|"inbound").
*/}}
{{- define "mailgate.deployment" -}}
{{- $root := .root }}
{{- $c := index $root.Values .component }}
{{- $keda := and (eq .component "worker") $root.Values.worker.keda.enabled }}
{{- $jwtKeys := and (eq .component "api") (include "mailgate.mountJwtPublicKeys" $root) }}
{{- $inboundTLS := and (eq .component "inbound") $root.Values.inbound.tlsSecret }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "mailgate.fullname" $root }}-{{ .component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "mailgate.componentLabels" . | nindent 4 }}
  {{- with $c.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- if not (or $c.autoscaling.enabled $keda) }}
  replicas: {{ $c.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- include "mailgate.componentSelectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "mailgate.componentLabels" . | nindent 8 }}
        {{- with $c.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- $podAnnotations := deepCopy ($c.podAnnotations | default dict) }}
      {{- if include "mailgate.chartSecret" $root }}
      {{- $_ := set $podAnnotations "checksum/secret" (include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum) }}
      {{- end }}
      {{- with $podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "mailgate.serviceAccountName" $root }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      {{- with include "mailgate.imagePullSecrets" $root }}
      {{- . | nindent 6 }}
      {{- end }}
      {{- with $c.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      terminationGracePeriodSeconds: {{ include "mailgate.terminationGracePeriodSeconds" . }}
      securityContext:
        {{- include "mailgate.podSecurityContext" $root | nindent 8 }}
      {{- with (include "mailgate.topologySpread" . | trim) }}
      topologySpreadConstraints:
        {{- . | nindent 8 }}
      {{- end }}
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.initContainers }}
      initContainers:
        {{- tpl (toYaml .) $root | nindent 8 }}
      {{- end }}
      containers:
        - name: mailgate
          image: {{ include "mailgate.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            - serve
            - --role
            - {{ .component }}
          ports:
            - name: http
              containerPort: {{ $root.Values.ports.http }}
              protocol: TCP
            - name: metrics
              containerPort: {{ $root.Values.ports.admin }}
              protocol: TCP
            {{- if eq .component "inbound" }}
            - name: smtp
              containerPort: {{ $root.Values.ports.smtp }}
              protocol: TCP
            {{- end }}
          env:
            {{- include "mailgate.env" . | trim | nindent 12 }}
          {{- with $root.Values.extraEnvFrom }}
          envFrom:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          startupProbe:
            {{- toYaml $c.startupProbe | nindent 12 }}
          livenessProbe:
            {{- toYaml $c.livenessProbe | nindent 12 }}
          readinessProbe:
            {{- toYaml $c.readinessProbe | nindent 12 }}
          {{- with $c.lifecycle }}
          lifecycle:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          securityContext:
            {{- include "mailgate.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $jwtKeys }}
            - name: jwt-public-keys
              mountPath: {{ $root.Values.jwtPublicKeys.mountPath }}
              readOnly: true
            {{- end }}
            {{- with concat ($root.Values.extraVolumeMounts | default list) ($c.extraVolumeMounts | default list) }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- if $inboundTLS }}
            - name: inbound-tls
              mountPath: /etc/mailgate/inbound-tls
              readOnly: true
            {{- end }}
        {{- with $c.sidecars }}
        {{- tpl (toYaml .) $root | nindent 8 }}
        {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 256Mi
        {{- if $jwtKeys }}
        - name: jwt-public-keys
          secret:
            secretName: {{ include "mailgate.secretName" $root }}
            defaultMode: 0440
            items:
              - key: {{ $root.Values.secret.keys.jwtPublicKeys }}
                path: {{ $root.Values.secret.keys.jwtPublicKeys }}
        {{- end }}
        {{- with concat ($root.Values.extraVolumes | default list) ($c.extraVolumes | default list) }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- if $inboundTLS }}
        - name: inbound-tls
          secret:
            secretName: {{ $inboundTLS }}
            defaultMode: 0440
        {{- end }}
{{- end }}
