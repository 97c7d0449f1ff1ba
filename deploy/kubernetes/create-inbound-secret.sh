#!/bin/sh
# Creates the Secret amrelay-inbound with a random bearer token (key webhook-token), once per
# cluster, before `kubectl apply -k deploy/kubernetes`. amrelay requires the token on /webhook,
# the console and the admin API; Alertmanager sends it (deploy/alertmanager/). The token is
# generated here and never written to the repository. Re-running it keeps an existing Secret.
#   deploy/kubernetes/create-inbound-secret.sh [NAMESPACE]   (default: monitoring)
set -eu
namespace="${1:-monitoring}"
if kubectl -n "$namespace" get secret amrelay-inbound >/dev/null 2>&1; then
    echo "secret $namespace/amrelay-inbound exists; delete it first to make a new token" >&2
    exit 0
fi
token="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
kubectl -n "$namespace" create secret generic amrelay-inbound \
    --from-literal=webhook-token="$token"
kubectl -n "$namespace" label secret amrelay-inbound app.kubernetes.io/name=amrelay app.kubernetes.io/part-of=amrelay
echo "created $namespace/amrelay-inbound (key webhook-token)"
