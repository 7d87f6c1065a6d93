#!/bin/sh
# keepalived check for an airlock replica (deploy/keepalived/keepalived.conf.example):
# exits 0 when airlock's /readyz on the admin listener answers 200 (ready, or
# degraded but serving), non-zero otherwise (503 not ready, no answer).
# Install as /usr/local/lib/airlock/keepalived-check.sh, owned by root, mode 0755.
# AIRLOCK_ADMIN overrides the admin listener (admin.listen).
exec curl -fsS -o /dev/null --max-time 1 "http://${AIRLOCK_ADMIN:-127.0.0.1:9090}/readyz"
