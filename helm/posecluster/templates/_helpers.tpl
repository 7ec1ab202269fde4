{{/* Names and labels, as `helm create` does them. */}}
{{- define "posecluster.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "posecluster.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "posecluster.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "posecluster.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "posecluster.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ .Values.serviceAccount.name | default (include "posecluster.fullname" .) }}
{{- else -}}
{{ .Values.serviceAccount.name | default "default" }}
{{- end -}}
{{- end -}}

{{- define "posecluster.s3SecretName" -}}
{{ .Values.s3.existingSecret | default (printf "%s-s3" (include "posecluster.fullname" .)) }}
{{- end -}}

{{- define "posecluster.authSecretName" -}}
{{ .Values.rayAuth.existingSecret | default (printf "%s-ray-token" (include "posecluster.fullname" .)) }}
{{- end -}}

{{/* Environment of every posecluster container: storage endpoint, credentials (Secret only), Ray auth. */}}
{{- define "posecluster.env" -}}
{{- include "posecluster.s3Env" . }}
{{- include "posecluster.authEnv" . }}
- name: POSECLUSTER_CONFIG
  value: /etc/posecluster/config.yaml
{{- end -}}

{{/* Storage endpoint and credentials (from the Secret only): Ray pods and the web app. */}}
{{- define "posecluster.s3Env" -}}
{{- if .Values.s3.endpoint }}
- name: AWS_ENDPOINT_URL
  value: {{ .Values.s3.endpoint | quote }}
{{- end }}
- name: AWS_DEFAULT_REGION
  value: {{ .Values.s3.region | quote }}
{{- if or .Values.s3.existingSecret .Values.s3.createSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "posecluster.s3SecretName" . }}
      key: {{ .Values.s3.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "posecluster.s3SecretName" . }}
      key: {{ .Values.s3.secretAccessKeyKey }}
{{- end }}
{{- end -}}

{{/* Ray's token auth set by hand: for KubeRay < 1.5.1, or auth disabled. With rayAuth.kuberayManaged the
     operator injects RAY_AUTH_MODE/RAY_AUTH_TOKEN into every Ray container and uses the token itself. */}}
{{- define "posecluster.authEnv" -}}
{{- if eq .Values.rayAuth.mode "disabled" }}
- name: RAY_AUTH_MODE
  value: "disabled"
{{- else if not .Values.rayAuth.kuberayManaged }}
- name: RAY_AUTH_MODE
  value: "token"
- name: RAY_AUTH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "posecluster.authSecretName" . }}
      key: auth_token
{{- end }}
{{- end -}}

{{/* One Ray pod template (head or worker group). Call with (dict "root" $ "role" "head"|"worker"). */}}
{{- define "posecluster.rayPodTemplate" -}}
{{- $root := .root -}}
{{- $spec := index $root.Values .role -}}
metadata:
  labels:
    {{- include "posecluster.selectorLabels" $root | nindent 4 }}
    posecluster/role: {{ .role }}
spec:
  serviceAccountName: {{ include "posecluster.serviceAccountName" $root }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: ray-{{ .role }}
      image: {{ include "posecluster.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      env:
        {{- include "posecluster.env" $root | trim | nindent 8 }}
      ports:
        {{- if eq .role "head" }}
        - {name: gcs-server, containerPort: 6379}
        - {name: dashboard, containerPort: 8265}
        - {name: client, containerPort: 10001}
        {{- end }}
        - {name: metrics, containerPort: {{ $root.Values.metrics.port }}}
      resources:
        {{- $resources := deepCopy $spec.resources }}
        {{- if and (eq .role "worker") (gt (int $spec.gpus) 0) }}
        {{- $_ := set $resources "limits" (merge (dict "nvidia.com/gpu" (int $spec.gpus)) ($resources.limits | default dict)) }}
        {{- $_ := set $resources "requests" (merge (dict "nvidia.com/gpu" (int $spec.gpus)) ($resources.requests | default dict)) }}
        {{- end }}
        {{- toYaml $resources | nindent 8 }}
      volumeMounts:
        - {name: config, mountPath: /etc/posecluster, readOnly: true}
        - {name: ray-logs, mountPath: /tmp/ray}
        {{- if eq .role "worker" }}
        - {name: dshm, mountPath: /dev/shm}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "posecluster.fullname" $root }}-config
    - name: ray-logs
      emptyDir: {}
    {{- if eq .role "worker" }}
    - name: dshm
      emptyDir:
        medium: Memory
        sizeLimit: {{ $spec.shmSize }}
    {{- end }}
  {{- with $spec.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $spec.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $spec.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* The RayCluster spec, shared by the long-lived RayCluster and the RayJob's own cluster. */}}
{{- define "posecluster.rayClusterSpec" -}}
rayVersion: {{ .Values.rayVersion | quote }}
{{- if and (eq .Values.rayAuth.mode "token") .Values.rayAuth.kuberayManaged }}
authOptions:
  mode: token
  secretName: {{ include "posecluster.authSecretName" . }}
{{- end }}
enableInTreeAutoscaling: {{ .Values.autoscaling.enabled }}
{{- if .Values.autoscaling.enabled }}
autoscalerOptions:
  idleTimeoutSeconds: {{ .Values.autoscaling.idleTimeoutSeconds }}
  upscalingMode: Default
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  {{- with include "posecluster.authEnv" . | trim }}
  env:
    {{- . | nindent 4 }}
  {{- end }}
{{- end }}
headGroupSpec:
  serviceType: {{ .Values.head.serviceType }}
  rayStartParams:
    dashboard-host: "0.0.0.0"
    metrics-export-port: {{ .Values.metrics.port | quote }}
    {{- range $key, $value := .Values.head.rayStartParams }}
    {{ $key }}: {{ $value | quote }}
    {{- end }}
  template:
    {{- include "posecluster.rayPodTemplate" (dict "root" . "role" "head") | nindent 4 }}
workerGroupSpecs:
  - groupName: {{ .Values.worker.groupName }}
    replicas: {{ .Values.worker.replicas }}
    minReplicas: {{ .Values.worker.minReplicas }}
    maxReplicas: {{ .Values.worker.maxReplicas }}
    rayStartParams:
      metrics-export-port: {{ .Values.metrics.port | quote }}
      {{- range $key, $value := .Values.worker.rayStartParams }}
      {{ $key }}: {{ $value | quote }}
      {{- end }}
    template:
      {{- include "posecluster.rayPodTemplate" (dict "root" . "role" "worker") | nindent 6 }}
{{- end -}}

{{/* Ray prefixes application metrics with ray_; dashboards use the CLI's posecluster_* names. */}}
{{- define "posecluster.metricRelabelings" -}}
- sourceLabels: [__name__]
  regex: ray_(posecluster_.*)
  targetLabel: __name__
  replacement: ${1}
  action: replace
{{- end -}}
