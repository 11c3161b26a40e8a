{{/* Names, labels, the checks that refuse unworkable values, and the one pod template. */}}

{{- define "gpt-load.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name, short enough to take a "-follower" suffix within 63 characters. */}}
{{- define "gpt-load.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gpt-load.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gpt-load.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpt-load.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gpt-load.labels" -}}
helm.sh/chart: {{ include "gpt-load.chart" . }}
{{ include "gpt-load.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels of one Deployment's pods: selector labels plus the component, so the two Deployments'
selectors never overlap while the Service (selector labels only) reaches both. */}}
{{- define "gpt-load.componentSelectorLabels" -}}
{{ include "gpt-load.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "gpt-load.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}

{{- define "gpt-load.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gpt-load.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "gpt-load.secretName" -}}
{{- default (include "gpt-load.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/* True (non-empty) when DATABASE_DSN names a server database rather than a SQLite file, by the
same rules as the service's DSN parser. */}}
{{- define "gpt-load.isExternalDsn" -}}
{{- if regexMatch "^(postgres|postgresql|mysql)://|@tcp\\(" . -}}true{{- end -}}
{{- end -}}

{{/* The service raises a shutdown budget below 10 s to 10 s; the pod's grace period follows that. */}}
{{- define "gpt-load.terminationGracePeriodSeconds" -}}
{{- $shutdown := max 10 (int .Values.config.SERVER_GRACEFUL_SHUTDOWN_TIMEOUT) -}}
{{- add (int .Values.lifecycle.preStopSleepSeconds) $shutdown (int .Values.lifecycle.terminationMarginSeconds) -}}
{{- end -}}

{{/* AUTH_KEY: the given value, else the one already in the release's Secret, else a new random one. */}}
{{- define "gpt-load.authKey" -}}
{{- if .Values.secrets.authKey -}}
{{- .Values.secrets.authKey -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "gpt-load.fullname" .) -}}
{{- if and $existing $existing.data (hasKey $existing.data "AUTH_KEY") -}}
{{- index $existing.data "AUTH_KEY" | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Values that cannot work are refused here, at render time, with the way out in the message. */}}
{{- define "gpt-load.validate" -}}
{{- $s := .Values.secrets -}}
{{- if .Values.cluster.enabled -}}
{{- if .Values.existingSecret -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace .Values.existingSecret -}}
{{- if $existing -}}
{{- range $key := list "AUTH_KEY" "DATABASE_DSN" "REDIS_DSN" -}}
{{- if not (hasKey (default (dict) $existing.data) $key) -}}
{{- fail (printf "cluster.enabled=true: Secret %q (existingSecret) has no %s key." $.Values.existingSecret $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- if not $s.redisDsn -}}
{{- fail "cluster.enabled=true needs Redis for leader election and shared key state: set secrets.redisDsn (redis://host:6379/0) or existingSecret (a Secret with a REDIS_DSN key)." -}}
{{- end -}}
{{- if not (regexMatch "^rediss?://" $s.redisDsn) -}}
{{- fail "secrets.redisDsn must be a redis:// or rediss:// URL." -}}
{{- end -}}
{{- if not $s.databaseDsn -}}
{{- fail "cluster.enabled=true needs an external database shared by every pod (SQLite cannot be shared across pods): set secrets.databaseDsn to a postgres:// or mysql:// DSN, or existingSecret (a Secret with a DATABASE_DSN key)." -}}
{{- end -}}
{{- if not (include "gpt-load.isExternalDsn" $s.databaseDsn) -}}
{{- fail "cluster.enabled=true: secrets.databaseDsn is a SQLite path, and SQLite cannot be shared across pods; use a postgres:// or mysql:// DSN." -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- if .Values.follower.autoscaling.enabled -}}
{{- fail "follower.autoscaling.enabled=true needs cluster.enabled=true: single-node mode runs one pod and no followers." -}}
{{- end -}}
{{- end -}}
{{- with .Values.follower.autoscaling -}}
{{- if .enabled -}}
{{- if not (or .targetCPUUtilizationPercentage .targetMemoryUtilizationPercentage) -}}
{{- fail "follower.autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage above 0." -}}
{{- end -}}
{{- if gt (int .minReplicas) (int .maxReplicas) -}}
{{- fail "follower.autoscaling.minReplicas is above maxReplicas." -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $requests := default (dict) .Values.follower.resources.requests -}}
{{- if and .Values.follower.autoscaling.enabled .Values.follower.autoscaling.targetCPUUtilizationPercentage (not $requests.cpu) -}}
{{- fail "follower.autoscaling on CPU needs follower.resources.requests.cpu: utilisation is measured against it." -}}
{{- end -}}
{{- if and .Values.follower.autoscaling.enabled .Values.follower.autoscaling.targetMemoryUtilizationPercentage (not $requests.memory) -}}
{{- fail "follower.autoscaling on memory needs follower.resources.requests.memory: utilisation is measured against it." -}}
{{- end -}}
{{- if .Values.ingress.enabled -}}
{{- if not .Values.ingress.hosts -}}
{{- fail "ingress.enabled=true needs at least one entry in ingress.hosts." -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Affinity: the component's own, else a soft spread over nodes. */}}
{{- define "gpt-load.affinity" -}}
{{- if .values.affinity -}}
{{- toYaml .values.affinity -}}
{{- else -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "gpt-load.componentSelectorLabels" (dict "root" .root "component" .component) | nindent 12 }}
{{- end -}}
{{- end -}}

{{/*
The pod template shared by both Deployments. Called with
  root:      the chart's root context
  component: "leader" or "follower"
  isSlave:   the IS_SLAVE value of these pods
*/}}
{{- define "gpt-load.podTemplate" -}}
{{- $root := .root -}}
{{- $values := index $root.Values .component -}}
{{- $cluster := $root.Values.cluster.enabled -}}
metadata:
  labels:
    {{- include "gpt-load.componentSelectorLabels" (dict "root" $root "component" .component) | nindent 4 }}
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ $root.Values.config | toJson | sha256sum }}
    checksum/secret: {{ printf "%s|%s" ($root.Values.secrets | toJson) $root.Values.existingSecret | sha256sum }}
    {{- with $root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "gpt-load.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ include "gpt-load.terminationGracePeriodSeconds" $root }}
  containers:
    - name: gpt-load
      image: {{ include "gpt-load.image" $root | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: ["serve"]
      ports:
        - name: http
          containerPort: {{ int $root.Values.config.PORT }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "gpt-load.fullname" $root }}
        - secretRef:
            name: {{ include "gpt-load.secretName" $root }}
      env:
        - name: IS_SLAVE
          value: {{ .isSlave | toString | quote }}
        {{- with $root.Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      startupProbe:
        httpGet:
          path: /health
          port: http
        periodSeconds: {{ $root.Values.probes.startup.periodSeconds }}
        timeoutSeconds: {{ $root.Values.probes.startup.timeoutSeconds }}
        failureThreshold: {{ $root.Values.probes.startup.failureThreshold }}
      readinessProbe:
        httpGet:
          path: /health
          port: http
        periodSeconds: {{ $root.Values.probes.readiness.periodSeconds }}
        timeoutSeconds: {{ $root.Values.probes.readiness.timeoutSeconds }}
        failureThreshold: {{ $root.Values.probes.readiness.failureThreshold }}
      livenessProbe:
        httpGet:
          path: /health
          port: http
        periodSeconds: {{ $root.Values.probes.liveness.periodSeconds }}
        timeoutSeconds: {{ $root.Values.probes.liveness.timeoutSeconds }}
        failureThreshold: {{ $root.Values.probes.liveness.failureThreshold }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", {{ $root.Values.lifecycle.preStopSleepSeconds | toString | quote }}]
      resources:
        {{- toYaml $values.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: data
          mountPath: /app/data
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ $root.Values.tmpSizeLimit }}
    - name: data
      {{- if and (not $cluster) $root.Values.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ $root.Values.persistence.existingClaim | default (printf "%s-data" (include "gpt-load.fullname" $root)) }}
      {{- else }}
      # No volume claim: cluster mode keeps nothing here (the database is external), and single-node
      # mode without persistence loses its SQLite file with the pod. Writable for LOG_ENABLE_FILE.
      emptyDir: {}
      {{- end }}
  {{- with $values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  affinity:
    {{- include "gpt-load.affinity" (dict "root" $root "component" .component "values" $values) | nindent 4 }}
{{- end -}}
