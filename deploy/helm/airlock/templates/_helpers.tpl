{{/* Names and labels. */}}
{{- define "airlock.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "airlock.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "airlock.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "airlock.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "airlock.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "airlock.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component (server, node, reset). */}}
{{- define "airlock.selector" -}}
app.kubernetes.io/name: {{ include "airlock.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "airlock.serviceAccountName" -}}
{{- if .Values.server.serviceAccount.create -}}
{{- default (printf "%s-server" (include "airlock.fullname" .)) .Values.server.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.server.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image reference; . is a dict with image (repository, tag, digest) and root. */}}
{{- define "airlock.imageRef" -}}
{{- $img := .image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{- define "airlock.nodeImage" -}}
{{- $img := mergeOverwrite (deepCopy .Values.image) (default dict .Values.node.image) -}}
{{- include "airlock.imageRef" (dict "image" $img "root" .) -}}
{{- end -}}

{{/* registry.storage of airlock.yaml. */}}
{{- define "airlock.storage" -}}
{{- $st := .Values.server.storage -}}
{{- $out := dict -}}
{{- if eq $st.type "file" -}}
{{- $_ := set $out "path" "/var/lib/airlock/registry" -}}
{{- else if eq $st.type "azblob" -}}
{{- $q := list -}}
{{- if $st.azblob.endpoint }}{{ $q = append $q (printf "endpoint=%s" (urlquery $st.azblob.endpoint)) }}{{ end -}}
{{- if $st.azblob.create }}{{ $q = append $q "create=true" }}{{ end -}}
{{- $u := printf "azblob://%s" (required "server.storage.azblob.container is required" $st.azblob.container) -}}
{{- if $q }}{{ $u = printf "%s?%s" $u (join "&" $q) }}{{ end -}}
{{- $_ := set $out "url" $u -}}
{{- else if eq $st.type "s3" -}}
{{- $q := list (printf "region=%s" (required "server.storage.s3.region is required" $st.s3.region)) -}}
{{- if $st.s3.endpoint }}{{ $q = append $q (printf "endpoint=%s" (urlquery $st.s3.endpoint)) }}{{ end -}}
{{- if $st.s3.create }}{{ $q = append $q "create=true" }}{{ end -}}
{{- $_ := set $out "url" (printf "s3://%s?%s" (required "server.storage.s3.bucket is required" $st.s3.bucket) (join "&" $q)) -}}
{{- else -}}
{{- fail (printf "server.storage.type %q: want file, azblob or s3" $st.type) -}}
{{- end -}}
{{- if ne $st.type "file" -}}
{{- $_ := set $out "scratch" "/var/lib/airlock/scratch" -}}
{{- if $st.redirect }}{{ $_ := set $out "redirect" true }}{{ end -}}
{{- if $st.localCacheMaxSize -}}
{{- $_ := set $out "localCache" (dict "maxSize" $st.localCacheMaxSize "path" "/var/lib/airlock/blob-cache") -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* airlock.yaml of the server replicas. */}}
{{- define "airlock.serverConfig" -}}
{{- $s := .Values.server -}}
{{- $cfg := dict "version" 1 "log" $s.log -}}
{{- $admin := dict "listen" (printf ":%d" (int $s.admin.port)) -}}
{{- if $s.admin.users }}{{ $_ := set $admin "users" $s.admin.users }}{{ end -}}
{{- $_ := set $cfg "admin" $admin -}}
{{- if $s.registry.enabled -}}
{{- $reg := dict "listen" (printf ":%d" (int $s.registry.port)) "anonymousPull" $s.registry.anonymousPull "storage" (include "airlock.storage" . | fromYaml) -}}
{{- if $s.registry.users }}{{ $_ := set $reg "users" $s.registry.users }}{{ end -}}
{{- if $s.registry.cacheRules }}{{ $_ := set $reg "cacheRules" $s.registry.cacheRules }}{{ end -}}
{{- $reg = mergeOverwrite $reg (deepCopy $s.registry.extra) -}}
{{- $_ := set $cfg "registry" $reg -}}
{{- end -}}
{{- if $s.dns.enabled -}}
{{- $dns := dict "listen" (printf ":%d" (int $s.dns.port)) -}}
{{- if $s.dns.forwarders }}{{ $_ := set $dns "forwarders" $s.dns.forwarders }}{{ end -}}
{{- $dns = mergeOverwrite $dns (deepCopy $s.dns.extra) -}}
{{- $_ := set $cfg "dns" $dns -}}
{{- end -}}
{{- if $s.gateway.enabled -}}
{{- $gw := mergeOverwrite (dict "proxyListen" (printf ":%d" (int $s.gateway.port))) (deepCopy $s.gateway.extra) -}}
{{- $_ := set $cfg "gateway" $gw -}}
{{- end -}}
{{- $r := $s.redis -}}
{{- if or $r.address $r.addresses -}}
{{- $redis := dict -}}
{{- if $r.address }}{{ $_ := set $redis "address" $r.address }}{{ end -}}
{{- if $r.addresses }}{{ $_ := set $redis "addresses" $r.addresses }}{{ end -}}
{{- if $r.sentinelMaster }}{{ $_ := set $redis "sentinelMaster" $r.sentinelMaster }}{{ end -}}
{{- if $r.username }}{{ $_ := set $redis "username" $r.username }}{{ end -}}
{{- if $r.db }}{{ $_ := set $redis "db" (int $r.db) }}{{ end -}}
{{- if $r.keyPrefix }}{{ $_ := set $redis "keyPrefix" $r.keyPrefix }}{{ end -}}
{{- if $r.existingSecret }}{{ $_ := set $redis "passwordEnv" "REDIS_PASSWORD" }}{{ end -}}
{{- if $r.tls.enabled -}}
{{- $tls := dict "enabled" true -}}
{{- if $r.tls.serverName }}{{ $_ := set $tls "serverName" $r.tls.serverName }}{{ end -}}
{{- $_ := set $redis "tls" $tls -}}
{{- end -}}
{{- $_ := set $cfg "cluster" (dict "redis" $redis) -}}
{{- end -}}
{{- if $s.policy }}{{ $_ := set $cfg "policy" $s.policy }}{{ end -}}
{{- $cfg = mergeOverwrite $cfg (deepCopy $s.config) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* airlock.yaml of the node agent: the node section, rooted at /host. */}}
{{- define "airlock.nodeConfig" -}}
{{- $n := deepCopy .Values.node.config -}}
{{- $_ := set $n "root" "/host" -}}
{{- $_ := set $n "toolsRoot" "/host-root" -}}
{{- $_ := set $n "agent" (dict "listen" (printf ":%d" (int .Values.node.agent.port)) "interval" .Values.node.agent.interval) -}}
{{- $cfg := dict "version" 1 "log" .Values.server.log "node" $n -}}
{{- /* node apply writes one hosts.toml per cache rule upstream: the server's rules. */ -}}
{{- with .Values.server.registry.cacheRules }}{{ $_ := set $cfg "registry" (dict "cacheRules" .) }}{{ end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The host paths the node side reads and writes, mounted under /host. */}}
{{- define "airlock.nodeMounts" -}}
- { name: containerd, mountPath: /host/etc/containerd }
- { name: containers, mountPath: /host/etc/containers }
- { name: docker, mountPath: /host/etc/docker }
- { name: resolv-conf, mountPath: /host/etc/resolv.conf }
- { name: resolved-conf, mountPath: /host/etc/systemd/resolved.conf.d }
- { name: run-resolve, mountPath: /host/run/systemd/resolve, readOnly: true }
- { name: state, mountPath: /host/var/lib/airlock }
- { name: host-root, mountPath: /host-root, readOnly: true }
- { name: config, mountPath: /etc/airlock, readOnly: true }
{{- end -}}

{{- define "airlock.nodeVolumes" -}}
- { name: containerd, hostPath: { path: /etc/containerd, type: DirectoryOrCreate } }
- { name: containers, hostPath: { path: /etc/containers, type: DirectoryOrCreate } }
- { name: docker, hostPath: { path: /etc/docker, type: DirectoryOrCreate } }
- { name: resolv-conf, hostPath: { path: /etc/resolv.conf, type: File } }
- { name: resolved-conf, hostPath: { path: /etc/systemd/resolved.conf.d, type: DirectoryOrCreate } }
- { name: run-resolve, hostPath: { path: /run/systemd/resolve, type: DirectoryOrCreate } }
- { name: state, hostPath: { path: /var/lib/airlock, type: DirectoryOrCreate } }
- { name: host-root, hostPath: { path: /, type: Directory } }
{{- end -}}

{{/* The node side's security context: root for host files, NET_ADMIN for nftables and routes, SYS_CHROOT to run the host's nft and ip (node.toolsRoot) (README.md). */}}
{{- define "airlock.nodeSecurityContext" -}}
runAsUser: 0
runAsGroup: 0
runAsNonRoot: false
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
  add: [NET_ADMIN, SYS_CHROOT]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
