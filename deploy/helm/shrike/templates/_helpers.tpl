{{/* Names and labels shared by the templates. */}}

{{- define "shrike.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shrike.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "shrike.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shrike.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "shrike.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "shrike.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "shrike.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "shrike.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "shrike.secretName" -}}
{{- default (include "shrike.fullname" .) .Values.auth.existingSecret -}}
{{- end -}}

{{/* shrike.redisPasswordKey is the Secret's key of the Redis password, or empty. */}}
{{- define "shrike.redisPasswordKey" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecretRedisPasswordKey -}}
{{- else if .Values.auth.redisPassword -}}
redis-password
{{- end -}}
{{- end -}}

{{/* shrike.kafkaSaslPasswordKey is the Secret's key of Kafka's SASL password, or empty. */}}
{{- define "shrike.kafkaSaslPasswordKey" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecretKafkaSaslPasswordKey -}}
{{- else if .Values.auth.kafkaSaslPassword -}}
kafka-sasl-password
{{- end -}}
{{- end -}}

{{/* shrike.secretFiles lists, one per line, the names of auth's further secret files. */}}
{{- define "shrike.secretFiles" -}}
{{- if .Values.auth.existingSecret -}}
{{- range .Values.auth.existingSecretFiles }}
{{ . }}
{{- end -}}
{{- else -}}
{{- range $name, $_ := .Values.auth.files }}
{{ $name }}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "shrike.rulesetsConfigMap" -}}
{{- default (printf "%s-rulesets" (include "shrike.fullname" .)) .Values.existingRulesetsConfigMap -}}
{{- end -}}

{{/*
shrike.config is the configuration file: the chart's listeners, rules
folder and token files, with .Values.config merged over them.
*/}}
{{- define "shrike.config" -}}
{{- if not .Values.auth.tokens -}}
{{- fail "auth.tokens: give at least one API token (the API listens beyond loopback, where shrike requires bearer tokens)" -}}
{{- end -}}
{{- $tokens := list -}}
{{- range .Values.auth.tokens -}}
{{- $tokens = append $tokens (dict "name" .name "token_file" (printf "/etc/shrike/secrets/%s" .name) "scopes" .scopes) -}}
{{- end -}}
{{- $base := dict
  "http" (dict "listen" (printf "0.0.0.0:%v" .Values.service.httpPort))
  "grpc" (dict "listen" (printf "0.0.0.0:%v" .Values.service.grpcPort))
  "admin" (dict "listen" (printf "0.0.0.0:%v" .Values.service.adminPort))
  "rules" (dict "dir" "/etc/shrike/rules")
  "api" (dict "tokens" $tokens)
-}}
{{- $config := mergeOverwrite $base (deepCopy .Values.config) -}}
{{- if include "shrike.kafkaSaslPasswordKey" . -}}
{{- $kafka := get $config "kafka" | default dict -}}
{{- $sasl := get $kafka "sasl" | default dict -}}
{{- $_ := set $sasl "password_file" "/etc/shrike/secrets/kafka-sasl-password" -}}
{{- $_ := set $kafka "sasl" $sasl -}}
{{- $_ := set $config "kafka" $kafka -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}
