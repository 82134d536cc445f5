{{/* Shared helpers of the cilium-cpp chart. */}}

{{/* An image reference: repository[:tag][@digest], the tag defaulting to the chart's appVersion. */}}
{{- define "cilium.image" -}}
{{- $tag := .image.tag | default .chart.AppVersion -}}
{{- if .image.digest -}}
{{ .image.repository }}:{{ $tag }}@{{ .image.digest }}
{{- else -}}
{{ .image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "cilium.labels" -}}
app.kubernetes.io/part-of: cilium
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* kubeProxyReplacement as "true"/"false" (Cilium's string value, a boolean accepted). */}}
{{- define "cilium.kpr" -}}
{{- if or (eq (toString .Values.kubeProxyReplacement) "true") (eq (toString .Values.kubeProxyReplacement) "strict") -}}
true
{{- else -}}
false
{{- end -}}
{{- end -}}

{{/* devices as the agent's comma-separated text, from a list or a string. */}}
{{- define "cilium.devices" -}}
{{- if kindIs "slice" .Values.devices -}}
{{ join "," .Values.devices }}
{{- else -}}
{{ .Values.devices }}
{{- end -}}
{{- end -}}

{{/* Hubble's TLS is in use on the agents' TCP listener. */}}
{{- define "hubble.tls" -}}
{{- if and .Values.hubble.enabled .Values.hubble.tls.enabled .Values.hubble.listenAddress -}}
true
{{- end -}}
{{- end -}}

{{/* API server address as environment entries, when given (kube-proxy replacement needs it). */}}
{{- define "cilium.k8sServiceEnv" -}}
{{- if .Values.k8sServiceHost -}}
- name: KUBERNETES_SERVICE_HOST
  value: {{ .Values.k8sServiceHost | quote }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ .Values.k8sServicePort | default "443" | toString | quote }}
{{- end -}}
{{- end -}}
