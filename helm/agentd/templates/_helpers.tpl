{{/*
The chart's name, or nameOverride.
*/}}
{{- define "agentd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: fullnameOverride, else RELEASE-NAME (just RELEASE when it
already contains the name). 63 characters at most (DNS label).
*/}}
{{- define "agentd.fullname" -}}
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

{{- define "agentd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "agentd.labels" -}}
helm.sh/chart: {{ include "agentd.chart" . }}
{{ include "agentd.selectorLabels" . }}
app.kubernetes.io/version: {{ (.Values.image.tag | default .Chart.AppVersion) | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the agentd pods (Deployment, Services, PDB, NetworkPolicy,
topology spread). The helm test pod must not carry both.
*/}}
{{- define "agentd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of the helm test pod: its own name, so no agentd selector matches it.
*/}}
{{- define "agentd.testLabels" -}}
app.kubernetes.io/name: {{ include "agentd.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end }}

{{- define "agentd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agentd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The `job` label of agentd's scrape targets, which the PrometheusRule's selectors
name: prometheusRule.scrapeJob (a scrape config of your own), else the release's
full name (the chart's ServiceMonitor sets it).
*/}}
{{- define "agentd.scrapeJob" -}}
{{- .Values.prometheusRule.scrapeJob | default (include "agentd.fullname" .) }}
{{- end }}

{{/*
Inline secrets the schema also refuses (values.schema.json, the same patterns), for
installs that skip schema validation: a password in the Redis URL (user:password@,
or ?password= / ?pass=), a credential in the Qdrant URL or in a guardrail webhook's
URL, and a secret key of agentd's config given an inline string in extraConfig.
*/}}
{{- define "agentd.redisUrlSecret" -}}^rediss?://[^/?#@]*:[^/?#@]*@|[?&](?i:pass|password)={{- end }}
{{- define "agentd.qdrantUrlSecret" -}}^https?://[^/?#@]*:[^/?#@]*@|[?&](?i:api[-_]?key)={{- end }}
{{- define "agentd.webhookUrlSecret" -}}^https?://[^/?#@]*:[^/?#@]*@|[?&](?i:api[-_]?key|access[-_]?token|token|secret|password|pass|sig|signature)={{- end }}
{{- define "agentd.inlineSecretKey" -}}(?i)\b([a-z0-9_]*(api_key|password)|sha256)["']?[ \t]*=[ \t]*["']{{- end }}

{{- define "agentd.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
Container ports (fixed: the rendered agentd.toml binds them).
*/}}
{{- define "agentd.grpcPort" -}}50051{{- end }}
{{- define "agentd.metricsPort" -}}9464{{- end }}
{{- define "agentd.healthPort" -}}50052{{- end }}

{{/*
The port the kubelet's gRPC probes use: they speak no TLS, so with TLS on they go
to the plaintext health-only listener.
*/}}
{{- define "agentd.probePort" -}}
{{- if .Values.tls.enabled }}{{ include "agentd.healthPort" . }}{{ else }}{{ include "agentd.grpcPort" . }}{{ end }}
{{- end }}

{{/*
A duration as values.schema.json allows it ("500ms", "5s", "2m", "1h") in whole
seconds, rounded up. Used to compute terminationGracePeriodSeconds.
*/}}
{{- define "agentd.seconds" -}}
{{- $text := toString . }}
{{- if not (regexMatch "^[0-9]+(ms|s|m|h)$" $text) }}
{{- fail (printf "%q is not a duration such as \"30s\" (a whole number with ms, s, m or h)" $text) }}
{{- end }}
{{- $n := regexFind "^[0-9]+" $text | atoi }}
{{- $unit := regexReplaceAll "^[0-9]+" $text "" }}
{{- if eq $unit "ms" }}{{ div (add $n 999) 1000 }}
{{- else if eq $unit "s" }}{{ $n }}
{{- else if eq $unit "m" }}{{ mul $n 60 }}
{{- else }}{{ mul $n 3600 }}
{{- end }}
{{- end }}

{{/*
drainDelay + shutdownGrace in seconds: how long agentd may take to stop.
*/}}
{{- define "agentd.stopSeconds" -}}
{{- add (include "agentd.seconds" .Values.server.drainDelay | atoi) (include "agentd.seconds" .Values.server.shutdownGrace | atoi) }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the explicit value, which must exceed the stop time,
or the stop time plus a 10 s margin (process exit, slow SIGTERM delivery).
*/}}
{{- define "agentd.terminationGracePeriodSeconds" -}}
{{- $stop := include "agentd.stopSeconds" . | atoi }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $stop 10 }}
{{- else }}
{{- $explicit := .Values.terminationGracePeriodSeconds | int }}
{{- if le $explicit $stop }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than server.drainDelay + server.shutdownGrace (%s + %s = %ds): the kubelet would kill agentd before its calls drain" $explicit .Values.server.drainDelay .Values.server.shutdownGrace $stop) }}
{{- end }}
{{- $explicit }}
{{- end }}
{{- end }}

{{/*
Every Secret key the pods need, as a YAML list of {secretName, secretKey, path},
path relative to /etc/agentd/secrets/. configmap.yaml names the same paths; the
check (.ci/check-chart) verifies that every file the TOML names is mounted.
*/}}
{{- define "agentd.secretFiles" -}}
files:
{{- range .Values.auth.keys }}
  - {secretName: {{ .sha256.secretName | quote }}, secretKey: {{ .sha256.secretKey | quote }}, path: {{ printf "auth/%s" .name | quote }}}
{{- end }}
{{- range $name, $provider := .Values.llm.providers }}
{{- if $provider.apiKey }}
  - {secretName: {{ $provider.apiKey.secretName | quote }}, secretKey: {{ $provider.apiKey.secretKey | quote }}, path: {{ printf "llm/%s" $name | quote }}}
{{- end }}
{{- end }}
{{- if eq .Values.mode "cluster" }}
{{- with .Values.redis.password }}
  - {secretName: {{ .secretName | quote }}, secretKey: {{ .secretKey | quote }}, path: "redis-password"}
{{- end }}
{{- with .Values.redis.caCert }}
  - {secretName: {{ .secretName | quote }}, secretKey: {{ .secretKey | quote }}, path: "redis-ca.crt"}
{{- end }}
{{- end }}
{{- if .Values.qdrant.url }}
{{- with .Values.qdrant.apiKey }}
  - {secretName: {{ .secretName | quote }}, secretKey: {{ .secretKey | quote }}, path: "qdrant-api-key"}
{{- end }}
{{- end }}
{{- if .Values.retrieval.embeddings.enabled }}
{{- with .Values.retrieval.embeddings.apiKey }}
  - {secretName: {{ .secretName | quote }}, secretKey: {{ .secretKey | quote }}, path: "embeddings-api-key"}
{{- end }}
{{- end }}
{{- end }}

{{/*
A price ({input, cachedInput, output}: USD per 1M tokens) as a TOML inline table.
Amounts go through toJson as given: a string stays a string (agentd parses it
exactly), a number a number.
*/}}
{{- define "agentd.price" -}}
{{- $parts := list (printf "input = %s" (toJson .input)) }}
{{- if hasKey . "cachedInput" }}{{ $parts = append $parts (printf "cached_input = %s" (toJson .cachedInput)) }}{{ end }}
{{- if hasKey . "output" }}{{ $parts = append $parts (printf "output = %s" (toJson .output)) }}{{ end }}
{{- printf "{ %s }" (join ", " $parts) }}
{{- end }}

{{/*
The keys of one [cost.tenants.NAME] or [cost.keys.NAME] table, one per line, from
its values (camelCase) in agentd's order: USD amounts through toJson (see
agentd.price), counts through int64, periods and names as strings.
agentd.validate refuses session limits and downgradeTo on a key.
*/}}
{{- define "agentd.costLimits" -}}
{{- $limits := . | default dict }}
{{- range list "budgetUsdDay budget_usd_day usd" "budgetUsdMonth budget_usd_month usd" "budgetTokensDay budget_tokens_day count" "budgetTokensMonth budget_tokens_month count" "sessionUsd session_usd usd" "sessionTokens session_tokens count" "downgradeTo downgrade_to text" "rateRequests rate_requests count" "rateRequestsPer rate_requests_per text" "rateTokens rate_tokens count" "rateTokensPer rate_tokens_per text" }}
{{- $field := splitList " " . }}
{{- $value := get $limits (index $field 0) }}
{{- if and (hasKey $limits (index $field 0)) (not (kindIs "invalid" $value)) }}
{{- if eq (index $field 2) "count" }}
{{ index $field 1 }} = {{ $value | int64 }}
{{- else }}
{{ index $field 1 }} = {{ $value | toJson }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The keys of one [guardrails.pii] table (the global one or a tenant's), one per
line, from its values (camelCase): only the keys set, so agentd's defaults apply to
the rest (a tenant's table replaces the global one whole, so the same holds there).
Actions as strings; the maps of providers and types as inline tables, their keys
quoted through toJson; lists through toJson.
*/}}
{{- define "agentd.guardrailsPii" -}}
{{- $pii := . | default dict }}
{{- range $key := list "external" "local" "embeddings" "store" }}
{{- $value := index $pii $key }}
{{- if not (kindIs "invalid" $value) }}
{{ $key }} = {{ $value | toJson }}
{{- end }}
{{- end }}
{{- range $key := list "providers" "types" }}
{{- with index $pii $key }}
{{- $pairs := list }}
{{- range $name, $action := . }}{{ $pairs = append $pairs (printf "%s = %s" (toJson $name) (toJson $action)) }}{{ end }}
{{ $key }} = { {{ join ", " $pairs }} }
{{- end }}
{{- end }}
{{- with $pii.terms }}
terms = {{ . | toJson }}
{{- end }}
{{- end }}

{{/*
The keys of one [guardrails.injection] table, only those set. The thresholds are
written as floats ("1" would be a TOML integer).
*/}}
{{- define "agentd.guardrailsInjection" -}}
{{- $injection := . | default dict }}
{{- range $key := list "message" "content" }}
{{- $value := index $injection $key }}
{{- if not (kindIs "invalid" $value) }}
{{ $key }} = {{ $value | toJson }}
{{- end }}
{{- end }}
{{- if not (kindIs "invalid" $injection.threshold) }}
threshold = {{ include "agentd.float" $injection.threshold }}
{{- end }}
{{- if not (kindIs "invalid" $injection.actionThreshold) }}
action_threshold = {{ include "agentd.float" $injection.actionThreshold }}
{{- end }}
{{- end }}

{{/*
The keys of one [guardrails.output] table, only those set.
*/}}
{{- define "agentd.guardrailsOutput" -}}
{{- $output := . | default dict }}
{{- if not (kindIs "invalid" $output.redactPii) }}
redact_pii = {{ $output.redactPii | toJson }}
{{- end }}
{{- with $output.deny }}
deny = {{ . | toJson }}
{{- end }}
{{- end }}

{{/*
A number as a TOML float: toJson's shortest decimal, with ".0" added when it has
neither a point nor an exponent.
*/}}
{{- define "agentd.float" -}}
{{- $text := toJson (. | float64) }}
{{- if regexMatch "[.eE]" $text }}{{ $text }}{{ else }}{{ $text }}.0{{ end }}
{{- end }}

{{/*
A duration as values.schema.json allows it ("500ms", "5s", "2m", "1h") in whole
milliseconds. Used to check a webhook's timeout against agentd's bounds.
*/}}
{{- define "agentd.milliseconds" -}}
{{- $text := toString . }}
{{- if not (regexMatch "^[0-9]+(ms|s|m|h)$" $text) }}
{{- fail (printf "%q is not a duration such as \"500ms\" (a whole number with ms, s, m or h)" $text) }}
{{- end }}
{{- $n := regexFind "^[0-9]+" $text | atoi }}
{{- $unit := regexReplaceAll "^[0-9]+" $text "" }}
{{- if eq $unit "ms" }}{{ $n }}
{{- else if eq $unit "s" }}{{ mul $n 1000 }}
{{- else if eq $unit "m" }}{{ mul $n 60000 }}
{{- else }}{{ mul $n 3600000 }}
{{- end }}
{{- end }}

{{/*
The TOML tables the chart writes; extraConfig may not open them again (TOML forbids
defining a table twice).
*/}}
{{- define "agentd.ownedTables" -}}
{{- $tables := list "server" "server.tls" "storage" "auth" "auth.keys" "log" "llm" "llm.tiers" "llm.providers" "llm.models" "llm.routes" "llm.retry" "llm.breaker" "cost" "cost.tenants" "cost.keys" "guardrails" "guardrails.pii" "guardrails.injection" "guardrails.output" "guardrails.tenants" "guardrails.webhooks" "state" "retrieval" "retrieval.embeddings" }}
{{- range $name, $_ := .Values.llm.providers }}{{ $tables = append $tables (printf "llm.providers.%s" $name) }}{{ end }}
{{- range $name, $_ := .Values.llm.models }}{{ $tables = append $tables (printf "llm.models.%s" $name) }}{{ end }}
{{- range $name, $_ := .Values.llm.routes }}{{ $tables = append $tables (printf "llm.routes.%s" $name) }}{{ end }}
{{- range $name, $_ := .Values.cost.tenants }}{{ $tables = append $tables (printf "cost.tenants.%s" $name) }}{{ end }}
{{- range $name, $_ := .Values.cost.keys }}{{ $tables = append $tables (printf "cost.keys.%s" $name) }}{{ end }}
{{- range $name, $tenant := .Values.guardrails.tenants }}
{{- $tables = append $tables (printf "guardrails.tenants.%s" $name) }}
{{- range $table := list "pii" "injection" "output" }}{{ $tables = append $tables (printf "guardrails.tenants.%s.%s" $name $table) }}{{ end }}
{{- end }}
{{- range $name, $_ := .Values.guardrails.webhooks }}{{ $tables = append $tables (printf "guardrails.webhooks.%s" $name) }}{{ end }}
{{- toJson $tables }}
{{- end }}

{{/*
Rules the schema cannot express, or states in a sentence an operator can act on.
Rendered (as nothing) by the Deployment, so every install runs them. Each fails
the install with a message naming the value.
*/}}
{{- define "agentd.validate" -}}
{{- $v := .Values }}
{{- if eq $v.mode "embedded" }}
{{- if gt ($v.replicaCount | int) 1 }}
{{- fail (printf "replicaCount: embedded mode runs exactly one replica (its data directory cannot be shared), got %d; use mode: cluster (Redis + an external Qdrant) to run several" ($v.replicaCount | int)) }}
{{- end }}
{{- if $v.autoscaling.enabled }}
{{- fail "autoscaling.enabled: embedded mode runs exactly one replica and cannot autoscale; use mode: cluster (Redis + an external Qdrant) to autoscale" }}
{{- end }}
{{- if $v.redis.url }}
{{- fail "redis.url: Redis holds the sessions in cluster mode only; embedded mode keeps them in its data directory. Remove redis.url or use mode: cluster" }}
{{- end }}
{{- else if eq $v.mode "cluster" }}
{{- if not $v.redis.url }}
{{- fail "redis.url: cluster mode keeps sessions in Redis; give its URL (redis://HOST:6379/0)" }}
{{- end }}
{{- if not $v.qdrant.url }}
{{- fail "qdrant.url: cluster mode needs an external Qdrant that every replica shares; give its gRPC URL (http://HOST:6334)" }}
{{- end }}
{{- else }}
{{- fail (printf "mode: must be embedded or cluster, got %q" $v.mode) }}
{{- end }}
{{- if not $v.auth.keys }}
{{- fail "auth.keys: add at least one API key (the pods listen beyond loopback, so agentd requires auth): store the SHA-256 printed by `agentd keys hash` in a Secret and reference it as {name, tenant, roles, sha256: {secretName, secretKey}}" }}
{{- end }}
{{- $names := dict }}
{{- range $v.auth.keys }}
{{- if hasKey $names .name }}
{{- fail (printf "auth.keys: the name %q is used twice; names must be unique (each names the file its hash is mounted as)" .name) }}
{{- end }}
{{- $_ := set $names .name true }}
{{- end }}
{{- if and $v.tls.enabled (not $v.tls.existingSecret) }}
{{- fail "tls.existingSecret: TLS is enabled; name the kubernetes.io/tls Secret holding tls.crt and tls.key" }}
{{- end }}
{{- if and $v.tls.clientCA (not $v.tls.enabled) }}
{{- fail "tls.clientCA: client certificates need TLS; set tls.enabled and tls.existingSecret" }}
{{- end }}
{{- if and $v.tests.enabled $v.tls.enabled $v.tls.clientCA (not $v.tests.tls.clientCertSecret) }}
{{- fail "tests.tls.clientCertSecret: with tls.clientCA the helm test pod needs a client certificate (a kubernetes.io/tls Secret); or set tests.enabled: false" }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt ($v.autoscaling.minReplicas | int) ($v.autoscaling.maxReplicas | int)) }}
{{- fail "autoscaling.minReplicas is greater than autoscaling.maxReplicas" }}
{{- end }}
{{- range $name, $model := $v.llm.models }}
{{- if not (hasKey $v.llm.providers $model.provider) }}
{{- fail (printf "llm.models.%s.provider: %q is not a key of llm.providers" $name $model.provider) }}
{{- end }}
{{- end }}
{{- /*
agentd refuses, at start, a default model or tier naming neither a model nor a
route, a route target that is not a model, and a route named like a model: the
pods never get ready, and in embedded mode (Recreate, the old pod already gone)
that is an outage. Checked when the chart models the models; those defined in
extraConfig ([llm.models.NAME], [llm.routes.NAME]) count too.
*/}}
{{- if $v.llm.models }}
{{- $models := keys $v.llm.models }}
{{- range regexFindAll `(?m)^[ \t]*\[[ \t]*llm\.models\.[^\]\n]+\]` $v.extraConfig -1 }}
{{- $models = append $models (regexReplaceAll `^[ \t]*\[[ \t]*llm\.models\."?|"?[ \t]*\]$` . "") }}
{{- end }}
{{- $known := concat $models (keys $v.llm.routes) }}
{{- range regexFindAll `(?m)^[ \t]*\[[ \t]*llm\.routes\.[^\]\n]+\]` $v.extraConfig -1 }}
{{- $known = append $known (regexReplaceAll `^[ \t]*\[[ \t]*llm\.routes\."?|"?[ \t]*\]$` . "") }}
{{- end }}
{{- $list := $known | sortAlpha | join ", " }}
{{- $modelList := $models | sortAlpha | join ", " }}
{{- range $name, $route := $v.llm.routes }}
{{- if has $name $models }}
{{- fail (printf "llm.routes.%s: a model has the same name; models and routes share one namespace (every model is already a route of one target)" $name) }}
{{- end }}
{{- if and $route.weights (ne (len $route.weights) (len $route.targets)) }}
{{- fail (printf "llm.routes.%s.weights: %d weights for %d targets; give one per target" $name (len $route.weights) (len $route.targets)) }}
{{- end }}
{{- $total := 0 }}
{{- range $route.weights }}{{- $total = add $total (. | int) }}{{- end }}
{{- if and $route.weights (eq ($total | int) 0) }}
{{- fail (printf "llm.routes.%s.weights: at least one must be above 0" $name) }}
{{- end }}
{{- range $route.targets }}
{{- if not (has . $models) }}
{{- fail (printf "llm.routes.%s.targets: %q is not a model of llm.models (%s)" $name . $modelList) }}
{{- end }}
{{- end }}
{{- range $route.fallback }}
{{- if not (has . $known) }}
{{- fail (printf "llm.routes.%s.fallback: %q is not a model of llm.models nor a route of llm.routes (%s)" $name . $list) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $v.llm.defaultModel (not (has $v.llm.defaultModel $known)) }}
{{- fail (printf "llm.defaultModel: %q is not a model of llm.models nor a route of llm.routes (%s); agentd would refuse the configuration at start. Add it or name one of those" $v.llm.defaultModel $list) }}
{{- end }}
{{- range $tier, $model := $v.llm.tiers }}
{{- if not (has $model $known) }}
{{- fail (printf "llm.tiers.%s: %q is not a model of llm.models nor a route of llm.routes (%s); agentd would refuse the configuration at start. Add it or map the tier to one of those" $tier $model $list) }}
{{- end }}
{{- end }}
{{- range $tenant, $limits := $v.cost.tenants }}
{{- with ($limits | default dict).downgradeTo }}
{{- if not (has . $known) }}
{{- fail (printf "cost.tenants.%s.downgradeTo: %q is not a model of llm.models nor a route of llm.routes (%s); agentd would refuse the configuration at start" $tenant . $list) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- /*
Prices: input is what every price has (agentd refuses a price without it).
*/}}
{{- range $name, $model := $v.llm.models }}
{{- if and $model.price (kindIs "invalid" $model.price.input) }}
{{- fail (printf "llm.models.%s.price.input: a price needs input (USD per 1M input tokens); cachedInput and output are optional" $name) }}
{{- end }}
{{- end }}
{{- with $v.retrieval.embeddings.price }}
{{- if kindIs "invalid" .input }}
{{- fail "retrieval.embeddings.price.input: a price needs input (USD per 1M input tokens)" }}
{{- end }}
{{- end }}
{{- /*
Budgets and rate limits name tenants and keys of auth.keys. The chart writes
[auth] (extraConfig cannot add keys), so it knows them all; agentd refuses any
other name at start, which in embedded mode (Recreate) is an outage. A session
belongs to a tenant, not to a key: session limits are the tenant's.
*/}}
{{- $tenants := list }}
{{- $keyNames := list }}
{{- range $v.auth.keys }}
{{- $tenants = append $tenants .tenant }}
{{- $keyNames = append $keyNames .name }}
{{- end }}
{{- range $name, $_ := $v.cost.tenants }}
{{- if not (has $name $tenants) }}
{{- fail (printf "cost.tenants.%s: no key of auth.keys acts for this tenant (tenants: %s); agentd would refuse the configuration at start. Give a key that tenant, or remove the entry" $name ($tenants | uniq | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- range $name, $limits := $v.cost.keys }}
{{- if not (has $name $keyNames) }}
{{- fail (printf "cost.keys.%s: no entry of auth.keys has this name (keys: %s); agentd would refuse the configuration at start" $name ($keyNames | sortAlpha | join ", ")) }}
{{- end }}
{{- range list "sessionUsd" "sessionTokens" }}
{{- if hasKey ($limits | default dict) . }}
{{- fail (printf "cost.keys.%s.%s: only a tenant can have a session limit (a session belongs to a tenant, not to a key); set it under cost.tenants" $name .) }}
{{- end }}
{{- end }}
{{- if hasKey ($limits | default dict) "downgradeTo" }}
{{- fail (printf "cost.keys.%s.downgradeTo: only a tenant has a downgrade route; set it under cost.tenants" $name) }}
{{- end }}
{{- end }}
{{- /*
Guardrails name tenants of auth.keys, providers of llm.providers (or of
extraConfig) and webhooks of guardrails.webhooks; an injection table's
actionThreshold is at least its threshold (when both are given: the defaults are
agentd's); a webhook's timeout is above 0 and at most 30s. agentd refuses
anything else at start.
*/}}
{{- $providers := keys $v.llm.providers }}
{{- range regexFindAll `(?m)^[ \t]*\[[ \t]*llm\.providers\.[^\]\n]+\]` $v.extraConfig -1 }}
{{- $providers = append $providers (regexReplaceAll `^[ \t]*\[[ \t]*llm\.providers\."?|"?[ \t]*\]$` . "") }}
{{- end }}
{{- $webhooks := keys $v.guardrails.webhooks }}
{{- $piiTables := list (list "guardrails.pii" $v.guardrails.pii) }}
{{- range $name, $tenant := $v.guardrails.tenants }}
{{- $tenant = $tenant | default dict }}
{{- if not (has $name $tenants) }}
{{- fail (printf "guardrails.tenants.%s: no key of auth.keys acts for this tenant (tenants: %s); agentd would refuse the configuration at start. Give a key that tenant, or remove the entry" $name ($tenants | uniq | sortAlpha | join ", ")) }}
{{- end }}
{{- with $tenant.pii }}{{ $piiTables = append $piiTables (list (printf "guardrails.tenants.%s.pii" $name) .) }}{{ end }}
{{- range $tenant.webhooks }}
{{- if not (has . $webhooks) }}
{{- fail (printf "guardrails.tenants.%s.webhooks: %q is not a webhook of guardrails.webhooks (%s)" $name . ($webhooks | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- end }}
{{- $injectionTables := list (list "guardrails.injection" $v.guardrails.injection) }}
{{- range $name, $tenant := $v.guardrails.tenants }}
{{- with ($tenant | default dict).injection }}{{ $injectionTables = append $injectionTables (list (printf "guardrails.tenants.%s.injection" $name) .) }}{{ end }}
{{- end }}
{{- range $injectionTables }}
{{- $injection := (index . 1) | default dict }}
{{- if and (not (kindIs "invalid" $injection.threshold)) (not (kindIs "invalid" $injection.actionThreshold)) }}
{{- if lt ($injection.actionThreshold | float64) ($injection.threshold | float64) }}
{{- fail (printf "%s.actionThreshold: %v is below threshold (%v); block and strip apply from actionThreshold, flagging from threshold, so it must be at least as high" (index . 0) $injection.actionThreshold $injection.threshold) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $piiTables }}
{{- $key := index . 0 }}
{{- range $provider, $_ := ((index . 1) | default dict).providers }}
{{- if not (has $provider $providers) }}
{{- fail (printf "%s.providers.%s: no provider of that name in llm.providers (%s); agentd would refuse the configuration at start" $key $provider ($providers | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $name, $hook := $v.guardrails.webhooks }}
{{- with $hook.timeout }}
{{- $ms := include "agentd.milliseconds" . | atoi }}
{{- if or (le $ms 0) (gt $ms 30000) }}
{{- fail (printf "guardrails.webhooks.%s.timeout: %s is not above 0 and at most 30s; a turn waits for the webhook that long" $name .) }}
{{- end }}
{{- end }}
{{- if regexMatch (include "agentd.webhookUrlSecret" .) ($hook.url | toString) }}
{{- fail (printf "guardrails.webhooks.%s.url: holds a credential (user:password@ or a token in the query); values are not secret" $name) }}
{{- end }}
{{- end }}
{{- if regexMatch (include "agentd.redisUrlSecret" .) $v.redis.url }}
{{- fail "redis.url: holds a password (user:password@ or ?password=); values are not secret. Put the password in a Secret and reference it as redis.password: {secretName, secretKey} (a user name alone, user@host, is allowed)" }}
{{- end }}
{{- if regexMatch (include "agentd.qdrantUrlSecret" .) $v.qdrant.url }}
{{- fail "qdrant.url: holds a credential (user:password@ or ?api-key=); values are not secret. Put the API key in a Secret and reference it as qdrant.apiKey: {secretName, secretKey}" }}
{{- end }}
{{- with regexFind (include "agentd.inlineSecretKey" .) $v.extraConfig }}
{{- fail (printf "extraConfig: %s is a secret given as an inline string, and values are not secret. Name a file instead ({ file = \"/path\" }: a Secret mounted with extraVolumes and extraVolumeMounts) or a variable ({ env = \"NAME\" }: set by extraEnv from a secretKeyRef)" (regexFind `(?i)[a-z0-9_]*(api_key|password)|sha256` .)) }}
{{- end }}
{{- /*
extraConfig is appended after the chart's last table: a key before extraConfig's
first [table] header would silently belong to that table (today [retrieval] or
[retrieval.embeddings]).
*/}}
{{- $header := "" }}
{{- range splitList "\n" $v.extraConfig }}
{{- $line := trim . }}
{{- if and (not $header) $line (not (hasPrefix "#" $line)) }}
{{- $header = $line }}
{{- end }}
{{- end }}
{{- if and $header (not (hasPrefix "[" $header)) }}
{{- fail (printf "extraConfig: starts with %q, a key outside any table; it would land in the last table the chart writes. Start extraConfig with a [table] header (for keys of the chart's own tables, use extraEnv with AGENTD__SECTION__KEY)" $header) }}
{{- end }}
{{- $owned := include "agentd.ownedTables" . | fromJsonArray }}
{{- range regexFindAll "(?m)^[ \\t]*\\[\\[?[ \\t]*[A-Za-z0-9_.\\-]+[ \\t]*\\]" $v.extraConfig -1 }}
{{- $table := regexReplaceAll "[\\[\\] \\t]" . "" }}
{{- if has $table $owned }}
{{- fail (printf "extraConfig: opens the table [%s], which the chart already writes (TOML forbids defining a table twice); set its keys through the chart's values or extraEnv (AGENTD__SECTION__KEY)" $table) }}
{{- end }}
{{- end }}
{{- if and $v.prometheusRule.enabled (not $v.serviceMonitor.enabled) (not $v.prometheusRule.scrapeJob) }}
{{- fail "prometheusRule.enabled: the alerts select agentd's targets by their job label, and with serviceMonitor.enabled false nothing scrapes them under the chart's job: AgentdNoReadyPods (absent(up)) would page for ever. Enable serviceMonitor, or set prometheusRule.scrapeJob to the job label of the scrape config that scrapes agentd" }}
{{- end }}
{{- if and (eq $v.mode "cluster") $v.podDisruptionBudget.enabled }}
{{- $pdb := $v.podDisruptionBudget }}
{{- /* The fewest replicas the Deployment may run: a budget that keeps all of them up
blocks every node drain (kubectl drain waits for ever). */}}
{{- $floor := $v.replicaCount | int }}
{{- $floorName := "replicaCount" }}
{{- if $v.autoscaling.enabled }}
{{- $floor = $v.autoscaling.minReplicas | int }}
{{- $floorName = "autoscaling.minReplicas" }}
{{- end }}
{{- if hasKey $pdb "minAvailable" }}
{{- $min := $pdb.minAvailable }}
{{- if kindIs "string" $min }}
{{- if ge (trimSuffix "%" $min | atoi) 100 }}
{{- fail (printf "podDisruptionBudget.minAvailable: %s keeps every pod up, so no node can ever be drained; allow at least one pod to be evicted" $min) }}
{{- end }}
{{- else if ge ($min | int) $floor }}
{{- fail (printf "podDisruptionBudget.minAvailable: %d is not below %s (%d): no pod could ever be evicted, so every node drain would block; use at most %d, or maxUnavailable" ($min | int) $floorName $floor (sub $floor 1)) }}
{{- end }}
{{- else }}
{{- $max := $pdb.maxUnavailable }}
{{- if or (and (kindIs "string" $max) (regexMatch "^0+%$" (toString $max))) (and (not (kindIs "string" $max)) (eq ($max | int) 0)) }}
{{- fail "podDisruptionBudget.maxUnavailable: 0 lets no pod be evicted, so every node drain would block; use 1 (or more), or disable the budget" }}
{{- end }}
{{- end }}
{{- end }}
{{- if $v.networkPolicy.enabled }}
{{- $egress := $v.networkPolicy.egress }}
{{- if and (eq $v.mode "cluster") (not $egress.redis.to) }}
{{- fail "networkPolicy.egress.redis.to: the NetworkPolicy allows no egress to Redis; list its pods (podSelector/namespaceSelector) or address (ipBlock)" }}
{{- end }}
{{- if and (eq $v.mode "cluster") (regexMatch "^rediss?://" $v.redis.url) }}
{{- /* The port of redis.url (6379 when it names none, TLS or not). */}}
{{- $authority := regexReplaceAll "^.*@" (regexReplaceAll "^rediss?://([^/?#]*).*$" $v.redis.url "${1}") "" }}
{{- $port := 6379 }}
{{- with regexFind ":[0-9]+$" $authority }}{{ $port = trimPrefix ":" . | atoi }}{{ end }}
{{- $ports := list }}
{{- range $egress.redis.ports }}{{ $ports = append $ports (. | int) }}{{ end }}
{{- if not (has $port $ports) }}
{{- fail (printf "networkPolicy.egress.redis.ports: %v does not include %d, the port of redis.url; the NetworkPolicy would cut agentd off from Redis" $ports $port) }}
{{- end }}
{{- end }}
{{- if and $v.qdrant.url (not $egress.qdrant.to) }}
{{- fail "networkPolicy.egress.qdrant.to: the NetworkPolicy allows no egress to Qdrant; list its pods (podSelector/namespaceSelector) or address (ipBlock)" }}
{{- end }}
{{- if and (or $v.llm.providers $v.retrieval.embeddings.enabled) (not $egress.llm.to) }}
{{- fail "networkPolicy.egress.llm.to: the NetworkPolicy allows no egress to the LLM endpoints; NetworkPolicy knows no hostnames, so give their CIDRs (ipBlock) or an egress gateway's selector" }}
{{- end }}
{{- if and $v.guardrails.webhooks (not $egress.webhooks.to) }}
{{- fail (printf "networkPolicy.egress.webhooks.to: the NetworkPolicy allows no egress to the guardrail webhooks (%s); a fail_closed webhook it cuts off refuses every turn it checks. List their pods (podSelector/namespaceSelector) or addresses (ipBlock)" (keys $v.guardrails.webhooks | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- end }}
