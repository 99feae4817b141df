{{/*
Helpers of the engage-consumer chart. Every name starts with "engage-consumer." so that a parent
chart that embeds this one cannot collide with them.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "engage-consumer.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full resource name: release name plus chart name, unless one contains the other. */}}
{{- define "engage-consumer.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "engage-consumer.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: name and instance only. Selectors are immutable on a Deployment, so nothing that
changes between releases (version, chart) may appear here.
*/}}
{{- define "engage-consumer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "engage-consumer.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The labels every resource of the release carries. */}}
{{- define "engage-consumer.labels" -}}
helm.sh/chart: {{ include "engage-consumer.chart" . }}
{{ include "engage-consumer.selectorLabels" . }}
app.kubernetes.io/version: {{ include "engage-consumer.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels of the helm test pod. Its name label differs from the consumer's, so the Service, the
PodDisruptionBudget and the NetworkPolicy (which select name + instance) never pick it up.
*/}}
{{- define "engage-consumer.testLabels" -}}
helm.sh/chart: {{ include "engage-consumer.chart" . }}
app.kubernetes.io/name: {{ include "engage-consumer.name" . | trunc 58 }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "engage-consumer.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: helm-test
{{- end }}

{{/* The image tag: image.tag, else the chart's appVersion. */}}
{{- define "engage-consumer.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest pins the image. */}}
{{- define "engage-consumer.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "engage-consumer.imageTag" .) }}
{{- end }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "engage-consumer.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "engage-consumer.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret with the credentials: existingSecret, else the one this chart creates. */}}
{{- define "engage-consumer.secretName" -}}
{{- default (include "engage-consumer.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* "true" when the Kafka security protocol uses SASL (empty otherwise, so it reads as false). */}}
{{- define "engage-consumer.saslEnabled" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}true{{ end }}
{{- end }}

{{/* "true" when the Kafka connection is TLS (SSL or SASL_SSL). */}}
{{- define "engage-consumer.tlsEnabled" -}}
{{- if hasSuffix "SSL" .Values.kafka.securityProtocol }}true{{ end }}
{{- end }}

{{/* "true" when a CA bundle for the brokers is mounted. */}}
{{- define "engage-consumer.caEnabled" -}}
{{- if or .Values.kafka.tls.ca.secretName .Values.kafka.tls.ca.configMapName }}true{{ end }}
{{- end }}

{{/* Where the CA bundle is mounted, and the file KAFKA_SSL_CAFILE names. */}}
{{- define "engage-consumer.caDir" -}}
/etc/engage-consumer/kafka-ca
{{- end }}

{{/* The query KEDA's prometheus trigger runs: the release's scalable backlog, summed over its pods. */}}
{{- define "engage-consumer.backlogQuery" -}}
{{- with .Values.autoscaling.keda.prometheus.query -}}
{{- . -}}
{{- else -}}
sum(engage_consumer_scalable_backlog{namespace="{{ .Release.Namespace }}",service="{{ include "engage-consumer.fullname" . }}"})
{{- end -}}
{{- end }}

{{/* KEDA's name for the SASL mechanism (its Kafka scaler's "sasl" parameter). */}}
{{- define "engage-consumer.kedaSaslMode" -}}
{{- $modes := dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512" }}
{{- get $modes .Values.kafka.sasl.mechanism }}
{{- end }}

{{/*
A number as the consumer parses it. Helm reads every number in a values file as a float, and
printing 1000000.0 as-is gives "1e+06", which int() refuses: whole numbers print as integers.
*/}}
{{- define "engage-consumer.number" -}}
{{- if eq (float64 .) (float64 (int64 .)) }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/*
Settings that only make sense together, checked once per render (the Deployment includes this).
Each failure names the values to change, so `helm install` stops before anything reaches the
cluster instead of leaving a consumer that crash-loops on its own settings check.
*/}}
{{- define "engage-consumer.validate" -}}
{{- $v := .Values }}
{{- $problems := list }}
{{- if not $v.kafka.bootstrapServers }}
{{- $problems = append $problems "kafka.bootstrapServers is required (host:port[,host:port])" }}
{{- end }}
{{- if not $v.kafka.inputTopics }}
{{- $problems = append $problems "kafka.inputTopics needs at least one topic" }}
{{- end }}
{{- if not $v.engage.baseUrl }}
{{- $problems = append $problems "engage.baseUrl is required (e.g. https://tenant.voyado.com)" }}
{{- end }}
{{- if $v.existingSecret }}
{{- if or $v.engage.apiKey $v.kafka.sasl.username $v.kafka.sasl.password }}
{{- $problems = append $problems (printf "existingSecret %q is set: leave engage.apiKey, kafka.sasl.username and kafka.sasl.password empty and store them in that Secret" $v.existingSecret) }}
{{- end }}
{{- else }}
{{- if not $v.engage.apiKey }}
{{- $problems = append $problems "engage.apiKey is required unless existingSecret names a Secret holding it" }}
{{- end }}
{{- if and (include "engage-consumer.saslEnabled" .) (not (and $v.kafka.sasl.username $v.kafka.sasl.password)) }}
{{- $problems = append $problems (printf "kafka.sasl.username and kafka.sasl.password are required with %s unless existingSecret names a Secret holding them" $v.kafka.securityProtocol) }}
{{- end }}
{{- end }}
{{- if and (include "engage-consumer.saslEnabled" .) (not $v.kafka.sasl.mechanism) }}
{{- $problems = append $problems (printf "kafka.sasl.mechanism is required with %s" $v.kafka.securityProtocol) }}
{{- end }}
{{- if and $v.kafka.tls.ca.secretName $v.kafka.tls.ca.configMapName }}
{{- $problems = append $problems "kafka.tls.ca: set secretName or configMapName, not both" }}
{{- end }}
{{- if and (include "engage-consumer.caEnabled" .) (not (include "engage-consumer.tlsEnabled" .)) }}
{{- $problems = append $problems (printf "kafka.tls.ca is set but kafka.securityProtocol %s does not use TLS (SSL or SASL_SSL)" $v.kafka.securityProtocol) }}
{{- end }}
{{- if le (float64 $v.terminationGracePeriodSeconds) (float64 $v.processing.drainTimeoutSeconds) }}
{{- $problems = append $problems (printf "terminationGracePeriodSeconds (%v) must be greater than processing.drainTimeoutSeconds (%v): after draining the consumer still flushes, commits and leaves the group before Kubernetes kills it" $v.terminationGracePeriodSeconds $v.processing.drainTimeoutSeconds) }}
{{- end }}
{{- if and $v.autoscaling.keda.enabled $v.autoscaling.hpa.enabled }}
{{- $problems = append $problems "autoscaling.keda.enabled and autoscaling.hpa.enabled are exclusive: two autoscalers would fight over the replicas" }}
{{- end }}
{{- $max := 0 }}
{{- $maxName := "" }}
{{- if $v.autoscaling.keda.enabled }}
{{- $max = int64 $v.autoscaling.keda.maxReplicaCount }}
{{- $maxName = "autoscaling.keda.maxReplicaCount" }}
{{- if gt (int64 $v.autoscaling.keda.minReplicaCount) $max }}
{{- $problems = append $problems "autoscaling.keda.minReplicaCount exceeds autoscaling.keda.maxReplicaCount" }}
{{- end }}
{{- if and (eq $v.autoscaling.keda.trigger "prometheus") (not $v.autoscaling.keda.prometheus.serverAddress) }}
{{- $problems = append $problems "autoscaling.keda.prometheus.serverAddress is required with autoscaling.keda.trigger prometheus (where KEDA queries engage_consumer_scalable_backlog), or set autoscaling.keda.trigger=kafka to scale on consumer-group lag" }}
{{- end }}
{{- else if $v.autoscaling.hpa.enabled }}
{{- $max = int64 $v.autoscaling.hpa.maxReplicas }}
{{- $maxName = "autoscaling.hpa.maxReplicas" }}
{{- if gt (int64 $v.autoscaling.hpa.minReplicas) $max }}
{{- $problems = append $problems "autoscaling.hpa.minReplicas exceeds autoscaling.hpa.maxReplicas" }}
{{- end }}
{{- end }}
{{- if $maxName }}
{{- if not $v.kafka.partitions }}
{{- $problems = append $problems (printf "kafka.partitions is required with autoscaling: %s may not exceed it" $maxName) }}
{{- else if gt $max (int64 $v.kafka.partitions) }}
{{- $problems = append $problems (printf "%s (%d) exceeds kafka.partitions (%d): replicas beyond the partition count get no partition and sit idle" $maxName $max (int64 $v.kafka.partitions)) }}
{{- end }}
{{- else if and $v.kafka.partitions (gt (int64 $v.replicaCount) (int64 $v.kafka.partitions)) }}
{{- $problems = append $problems (printf "replicaCount (%d) exceeds kafka.partitions (%d): replicas beyond the partition count get no partition and sit idle" (int64 $v.replicaCount) (int64 $v.kafka.partitions)) }}
{{- end }}
{{- if $v.podDisruptionBudget.enabled }}
{{- $maxUnavailable := toString $v.podDisruptionBudget.maxUnavailable }}
{{- $minAvailable := toString $v.podDisruptionBudget.minAvailable }}
{{- if and $maxUnavailable $minAvailable }}
{{- $problems = append $problems "podDisruptionBudget: set maxUnavailable or minAvailable, not both (set the other to \"\")" }}
{{- else if not (or $maxUnavailable $minAvailable) }}
{{- $problems = append $problems "podDisruptionBudget: set maxUnavailable or minAvailable" }}
{{- end }}
{{- end }}
{{- if and $v.networkPolicy.enabled (not $v.networkPolicy.kafka.to) }}
{{- $problems = append $problems "networkPolicy.kafka.to must say where the brokers are (NetworkPolicyPeers) when networkPolicy.enabled is true" }}
{{- end }}
{{- if $problems }}
{{- fail (printf "\n\nengage-consumer: invalid values:\n  - %s\n" (join "\n  - " $problems)) }}
{{- end }}
{{- end }}
