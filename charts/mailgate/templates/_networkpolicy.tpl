{{/* Egress every Mailgate pod needs: DNS and PostgreSQL. Call with .Values.networkPolicy.egress. */}}
{{- define "mailgate.egressBase" -}}
- ports:
    {{- range .dns.ports }}
    - protocol: UDP
      port: {{ . }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
  {{- with .dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- ports:
    {{- range .postgresql.ports }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
  {{- with .postgresql.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- define "mailgate.metricsIngress" -}}
- ports:
    - protocol: TCP
      port: {{ .Values.ports.admin }}
  {{- with .Values.networkPolicy.metricsFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
