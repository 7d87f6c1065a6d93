{{/* The server container's environment: storage and Redis credentials from Secrets, then server.env. */}}
{{- define "airlock.serverEnv" -}}
{{- $s := .Values.server }}
{{- $st := $s.storage }}
{{- if eq $st.type "azblob" }}
{{- with $st.azblob.accountName }}
- { name: AZURE_STORAGE_ACCOUNT, value: {{ . | quote }} }
{{- end }}
{{- if and $st.azblob.existingSecret $st.azblob.connectionStringKey }}
- name: AZURE_STORAGE_CONNECTION_STRING
  valueFrom: { secretKeyRef: { name: {{ $st.azblob.existingSecret | quote }}, key: {{ $st.azblob.connectionStringKey | quote }} } }
{{- end }}
{{- if and $st.azblob.existingSecret $st.azblob.accountKeyKey }}
- name: AZURE_STORAGE_KEY
  valueFrom: { secretKeyRef: { name: {{ $st.azblob.existingSecret | quote }}, key: {{ $st.azblob.accountKeyKey | quote }} } }
{{- end }}
{{- end }}
{{- if and (eq $st.type "s3") $st.s3.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom: { secretKeyRef: { name: {{ $st.s3.existingSecret | quote }}, key: {{ $st.s3.accessKeyIdKey | quote }} } }
- name: AWS_SECRET_ACCESS_KEY
  valueFrom: { secretKeyRef: { name: {{ $st.s3.existingSecret | quote }}, key: {{ $st.s3.secretAccessKeyKey | quote }} } }
{{- end }}
{{- if $s.redis.existingSecret }}
- name: REDIS_PASSWORD
  valueFrom: { secretKeyRef: { name: {{ $s.redis.existingSecret | quote }}, key: {{ $s.redis.passwordKey | quote }} } }
{{- end }}
{{- with $s.env }}
{{- toYaml . | nindent 0 }}
{{- end }}
{{- end -}}
