{{/*
Chart name.
*/}}
{{- define "beep.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every resource name: the release name (or fullnameOverride). Components are named
"<fullname>-<component>", so the messages subgraph of release "beep" is "beep-messages".
Kept to 40 characters so that "<fullname>-<component>" stays a valid DNS label.
*/}}
{{- define "beep.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/*
Name of one component. Usage: include "beep.componentName" (dict "root" $ "component" "messages")
*/}}
{{- define "beep.componentName" -}}
{{- printf "%s-%s" (include "beep.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "beep.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels common to every resource.
*/}}
{{- define "beep.labels" -}}
helm.sh/chart: {{ include "beep.chart" . }}
app.kubernetes.io/name: {{ include "beep.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: beep
{{- end }}

{{/*
Selector labels of one component. Usage: include "beep.selectorLabels" (dict "root" $ "component" "router")
*/}}
{{- define "beep.selectorLabels" -}}
app.kubernetes.io/name: {{ include "beep.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
All labels of one component.
*/}}
{{- define "beep.componentLabels" -}}
{{ include "beep.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "beep.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Environment variable naming a subgraph's URL, read by the router: BEEP_SUBGRAPH_URL_<NAME>.
*/}}
{{- define "beep.subgraphUrlEnvName" -}}
{{- printf "BEEP_SUBGRAPH_URL_%s" (. | upper | replace "-" "_") }}
{{- end }}

{{/*
Token issuer and JWKS URL: the values, or (auth.issuer empty) the users subgraph's built-in issuer.
*/}}
{{- define "beep.issuer" -}}
{{- if .Values.auth.issuer }}
{{- .Values.auth.issuer }}
{{- else }}
{{- $users := required "auth.issuer is required when there is no users subgraph" .Values.subgraphs.users }}
{{- printf "http://%s:%v" (include "beep.componentName" (dict "root" . "component" "users")) $users.port }}
{{- end }}
{{- end }}

{{- define "beep.jwksUrl" -}}
{{- .Values.auth.jwksUrl | default (printf "%s/.well-known/jwks.json" (include "beep.issuer" .)) }}
{{- end }}

{{/*
Where clients reach the router (BEEP_PUBLIC_URL): router.publicUrl, else the router's Service.
*/}}
{{- define "beep.publicUrl" -}}
{{- .Values.router.publicUrl | default (printf "http://%s:%v" (include "beep.componentName" (dict "root" . "component" "router")) .Values.router.port) -}}
{{- end }}

{{/*
Non-secret BEEP_* settings as a flat map (YAML): the ConfigMap's data, and the migration job's env.
BEEP_ISSUER_URL is what the subgraphs check `iss` against (and the built-in issuer signs with);
BEEP_JWT_ISSUER is the router's name for the same thing.
*/}}
{{/*
Traces (docs/tracing.md): the OTLP settings every process reads, as NAME: "value" lines; none when
tracing.otlpEndpoint is empty.
*/}}
{{- define "beep.tracingConfig" -}}
{{- with .Values.tracing }}
{{- if .otlpEndpoint }}
{{- $ratio := float64 .samplingRatio }}
{{- if or (lt $ratio 0.0) (gt $ratio 1.0) }}
{{- fail "tracing.samplingRatio: a share of traces, from 0 to 1" }}
{{- end }}
BEEP_OTEL_EXPORTER: "otlp"
BEEP_OTEL_ENDPOINT: {{ .otlpEndpoint | quote }}
BEEP_OTEL_SAMPLING_RATIO: {{ .samplingRatio | toString | quote }}
{{- end }}
{{- end }}
{{- end }}

{{- define "beep.sharedConfig" -}}
BEEP_MODE: {{ .Values.config.mode | quote }}
BEEP_LOGICAL_SHARDS: {{ .Values.config.logicalShards | quote }}
BEEP_LOG_LEVEL: {{ .Values.config.logLevel | quote }}
BEEP_ISSUER_URL: {{ include "beep.issuer" . | quote }}
BEEP_JWT_ISSUER: {{ include "beep.issuer" . | quote }}
BEEP_JWKS_URL: {{ include "beep.jwksUrl" . | quote }}
BEEP_JWT_AUDIENCE: {{ .Values.auth.audience | quote }}
BEEP_PUBLIC_URL: {{ include "beep.publicUrl" . | quote }}
{{- if .Values.turn.enabled }}
BEEP_VOICE_TURN_URLS: {{ required "turn.urls: the addresses clients reach coturn at" (join "," .Values.turn.urls) | quote }}
{{- end }}
BEEP_SEARCH_BACKEND: {{ .Values.search.backend | quote }}
{{- with include "beep.tracingConfig" . | trim }}
{{ . }}
{{- end }}
BEEP_SEARCH_SOLR_URL: {{ .Values.search.solrUrl | quote }}
{{- if .Values.search.sharedCoreBelowMessages }}
{{- fail "search.sharedCoreBelowMessages (a shared Solr core for small channels) is not implemented yet" }}
{{- end }}
{{- range $name, $value := .Values.config.extra }}
{{- if or (hasPrefix "BEEP_MEDIA_" $name) (hasPrefix "BEEP_S3_" $name) }}
{{- fail (printf "config.extra.%s: files are configured under `media` (values.yaml)" $name) }}
{{- end }}
{{- if eq $name "BEEP_PUBLIC_URL" }}
{{- fail "config.extra.BEEP_PUBLIC_URL: set router.publicUrl (values.yaml)" }}
{{- end }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
Files: S3 always (pods share no disk), with the signing keys and any S3 credentials from the existing
Secret. For the subgraphs and the worker only.
*/}}
{{- define "beep.mediaEnv" -}}
{{- $media := .Values.media }}
{{- $secret := .Values.secrets.existingSecret }}
- name: BEEP_MEDIA_STORAGE
  value: s3
- name: BEEP_S3_BUCKET
  value: {{ required "media.s3.bucket: the bucket files are stored in" $media.s3.bucket | quote }}
- name: BEEP_S3_REGION
  value: {{ $media.s3.region | quote }}
{{- with $media.s3.endpointUrl }}
- name: BEEP_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with $media.s3.prefix }}
- name: BEEP_S3_PREFIX
  value: {{ . | quote }}
{{- end }}
{{- with $media.publicUrl }}
- name: BEEP_MEDIA_PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
- name: BEEP_MEDIA_SIGNING_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ required "media.signingKeysKey: every pod must sign media URLs with the same keys" $media.signingKeysKey }}
{{- if or $media.s3.accessKeyIdKey $media.s3.secretAccessKeyKey }}
{{- if not (and $media.s3.accessKeyIdKey $media.s3.secretAccessKeyKey) }}
{{- fail "media.s3.accessKeyIdKey and media.s3.secretAccessKeyKey go together (or neither: botocore's chain)" }}
{{- end }}
- name: BEEP_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $media.s3.accessKeyIdKey }}
- name: BEEP_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $media.s3.secretAccessKeyKey }}
{{- end }}
{{- end }}

{{/*
Env entries for the credentials (from the existing Secret), then the connection settings that may
reference them as $(VAR): Kubernetes expands a reference only to a variable declared earlier.
*/}}
{{- define "beep.internalSecretEnv" -}}
- name: BEEP_INTERNAL_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ required "secrets.existingSecret must name an existing Secret" .Values.secrets.existingSecret }}
      key: {{ required "secrets.internalSecretKey: the router and the subgraphs share the internal secret" .Values.secrets.internalSecretKey }}
{{- if .Values.secrets.logTokenKeyKey }}
- name: BEEP_LOG_TOKEN_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.existingSecret }}
      key: {{ .Values.secrets.logTokenKeyKey }}
{{- end }}
{{- end }}

{{- define "beep.connectionEnv" -}}
{{- $secret := required "secrets.existingSecret must name an existing Secret" .Values.secrets.existingSecret }}
{{ include "beep.internalSecretEnv" . }}
{{- range $name, $key := .Values.secrets.env }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
{{- end }}

{{- if .Values.postgresql.cloudnativepg.enabled }}
{{- $url := printf "postgresql+asyncpg://beep:$(BEEP_DATABASE_PASSWORD)@%s-db-rw:5432/beep" (include "beep.fullname" .) }}
- name: BEEP_DIRECTORY_URL
  value: {{ $url | quote }}
- name: BEEP_SHARD_DATABASES
  value: {{ printf "0-%d=%s" (sub (int .Values.config.logicalShards) 1) $url | quote }}
{{- else }}
- name: BEEP_DIRECTORY_URL
  value: {{ .Values.database.directoryUrl | quote }}
- name: BEEP_SHARD_DATABASES
  value: {{ .Values.database.shardDatabases | quote }}
{{- end }}
- name: BEEP_REDIS_URL
  value: {{ include "beep.redisUrl" . | quote }}
{{- end }}

{{/*
Pod-level settings shared by every pod of the chart.
*/}}
{{- define "beep.podSpecCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
# Beep never talks to the Kubernetes API.
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The writable /tmp volume (the root filesystem is read-only).
*/}}
{{- define "beep.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
{{- end }}

{{/*
Pod template metadata. Usage: include "beep.podMetadata" (dict "root" $ "component" "messages")
*/}}
{{- define "beep.podMetadata" -}}
labels:
  {{- include "beep.selectorLabels" . | nindent 2 }}
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  # Roll the pods when the shared configuration changes.
  checksum/config: {{ include "beep.sharedConfig" .root | sha256sum }}
  {{- with .root.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
HTTP probes. Usage: include "beep.probes" (dict "root" $ "liveness" "/healthz" "readiness" "/healthz")
*/}}
{{- define "beep.probes" -}}
{{- $p := .root.Values.probes }}
livenessProbe:
  httpGet:
    path: {{ .liveness }}
    port: http
  {{- toYaml $p.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: {{ .readiness }}
    port: http
  {{- toYaml $p.readiness | nindent 2 }}
{{- end }}

{{/*
The internal URLs of every call host (the channels StatefulSet's pods), comma-separated.
Usage: include "beep.voiceNodes" (dict "name" "beep-channels" "service" "beep-channels-nodes" "port" 4103 "replicas" 2)
*/}}
{{- define "beep.voiceNodes" -}}
{{- $urls := list }}
{{- range $i := until (int .replicas) }}
{{- $urls = append $urls (printf "http://%s-%d.%s:%v" $.name $i $.service $.port) }}
{{- end }}
{{- join "," $urls }}
{{- end }}

{{/*
The ServiceAccount of Beep's long-running pods: their identity in an Istio mesh (the principal the
AuthorizationPolicies admit). The migration job keeps the namespace's default one: as a pre-install hook
it runs before this chart's resources exist.
*/}}
{{- define "beep.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "beep.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Spreads one component's pods over nodes (topologySpread in values.yaml).
Usage: include "beep.topologySpread" (dict "root" $ "component" "router")
*/}}
{{- define "beep.topologySpread" -}}
{{- $ctx := . }}
{{- with .root.Values.topologySpread }}
{{- if and .enabled .constraints }}
topologySpreadConstraints:
  {{- range .constraints }}
  - topologyKey: {{ required "topologySpread.constraints[].topologyKey" .topologyKey }}
    maxSkew: {{ .maxSkew | default 1 }}
    whenUnsatisfiable: {{ .whenUnsatisfiable | default "ScheduleAnyway" }}
    labelSelector:
      matchLabels:
        {{- include "beep.selectorLabels" $ctx | nindent 8 }}
  {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A HorizontalPodAutoscaler on CPU for one Deployment, its settings the component's `autoscaling` over the
top-level `autoscaling` defaults; nothing unless enabled.
Usage: include "beep.hpa" (dict "root" $ "component" "messages" "autoscaling" $subgraph.autoscaling)
*/}}
{{- define "beep.hpa" -}}
{{- /* `enabled` is the component's alone: merge would take a global `true` over a component's `false`. */}}
{{- $a := merge (deepCopy (.autoscaling | default dict)) (deepCopy .root.Values.autoscaling) }}
{{- if (.autoscaling | default dict).enabled }}
{{- $name := include "beep.componentName" . }}
{{- if or (lt (int $a.minReplicas) 1) (lt (int $a.maxReplicas) (int $a.minReplicas)) }}
{{- fail (printf "%s autoscaling: need 1 <= minReplicas <= maxReplicas (got %v, %v)" .component $a.minReplicas $a.maxReplicas) }}
{{- end }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  labels:
    {{- include "beep.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $a.targetCPUUtilizationPercentage }}
  {{- with $a.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Whether a component's Deployment leaves its replica count to an autoscaler ("true" or "").
Usage: include "beep.autoscaled" (dict "autoscaling" $subgraph.autoscaling)
*/}}
{{- define "beep.autoscaled" -}}
{{- if (.autoscaling | default dict).enabled }}true{{ end }}
{{- end }}

{{/*
A PodDisruptionBudget for one component (podDisruptionBudget in values.yaml).
Usage: include "beep.pdb" (dict "root" $ "component" "router")
*/}}
{{- define "beep.pdb" -}}
{{- with .root.Values.podDisruptionBudget }}
{{- if .enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "beep.componentName" $ }}
  labels:
    {{- include "beep.componentLabels" $ | nindent 4 }}
spec:
  maxUnavailable: {{ .maxUnavailable }}
  {{- with .unhealthyPodEvictionPolicy }}
  unhealthyPodEvictionPolicy: {{ . }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "beep.selectorLabels" $ | nindent 6 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
BEEP_REDIS_URL: redis.url, or a redis+sentinel:// URL naming redis.sentinel's Sentinels and master.
*/}}
{{- define "beep.redisUrl" -}}
{{- $sentinel := .Values.redis.sentinel | default dict }}
{{- if $sentinel.sentinels }}
{{- $master := required "redis.sentinel.masterName is required with redis.sentinel.sentinels" $sentinel.masterName }}
{{- $auth := ternary ":$(BEEP_REDIS_PASSWORD)@" "" (eq (toString $sentinel.password) "true") }}
{{- $query := ternary "?sentinel_password=$(BEEP_REDIS_PASSWORD)" "" (eq (toString $sentinel.sentinelPassword) "true") }}
{{- printf "redis+sentinel://%s%s/%s/%d%s" $auth (join "," $sentinel.sentinels) $master (int ($sentinel.db | default 0)) $query }}
{{- else }}
{{- .Values.redis.url }}
{{- end }}
{{- end }}
