# shellcheck shell=bash
# A local DynamoDB-API server for the tests of crates/vss-backend-dynamodb.
# Sourced by scripts/test; defines `start_dynamodb`.
#
# start_dynamodb: unless VSS_TEST_DYNAMODB_URL is already set, starts moto's
# DynamoDB server (PyPI package moto[server], installed when missing) bound to
# 127.0.0.1 on a free port, with its files under "$vss_tmp/dynamodb", waits
# until it answers ListTables, and exports:
#   VSS_TEST_DYNAMODB_URL   http://127.0.0.1:PORT
# Its stop is registered with vss_on_exit. Tests use dummy credentials and
# region us-east-1 with that endpoint, and a fresh table per test binary.
#
# moto's own `moto_server` serves requests on parallel threads, and its
# TransactWriteItems is not atomic against a concurrent request (it snapshots
# the table and restores the snapshot on cancellation, which can undo another
# request's committed write). DynamoDB's transactions are atomic, so the tests
# would see moto's races, not the backend's. The launcher below serves moto's
# application with one request at a time (connections stay parallel).
#
# Stand-alone use:
#   source scripts/lib.sh; vss_tmp=$(mktemp -d); source scripts/services/dynamodb.sh; start_dynamodb

# Pinned: the tests rely on its TransactWriteItems cancellation reasons (ALL_OLD).
VSS_MOTO_VERSION="5.2.1"

# Succeeds when the DynamoDB API at URL $1 answers ListTables.
vss_dynamodb_ping() {
  python3 - "$1" <<'EOF'
import json, sys, urllib.request
request = urllib.request.Request(
    sys.argv[1] + "/",
    data=b"{}",
    headers={
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Authorization": "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=0",
    },
)
with urllib.request.urlopen(request, timeout=2) as response:
    sys.exit(0 if "TableNames" in json.load(response) else 1)
EOF
}

# Stops the server whose pid is $1, and waits (bounded) until it is gone.
vss_dynamodb_stop() {
  local pid="$1"
  kill "$pid" 2>/dev/null || true
  if ! vss_wait_for 10 bash -c "! kill -0 $pid"; then
    kill -9 "$pid" 2>/dev/null || true
  fi
}

start_dynamodb() {
  if [ -n "${VSS_TEST_DYNAMODB_URL:-}" ]; then
    echo "dynamodb: using VSS_TEST_DYNAMODB_URL from the environment"
    return 0
  fi
  if ! python3 -c 'import moto.server, moto.dynamodb' >/dev/null 2>&1; then
    python3 -m pip install --quiet "moto[server]==$VSS_MOTO_VERSION" || return 1
  fi

  local port dir pid url
  port="$(vss_free_port)"
  dir="$vss_tmp/dynamodb"
  mkdir -p "$dir"
  cat >"$dir/serve.py" <<'EOF'
"""moto's DynamoDB API, one request at a time (see scripts/services/dynamodb.sh)."""
import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

moto_app = DomainDispatcherApplication(create_backend_app)
one_at_a_time = threading.Lock()


def app(environ, start_response):
    with one_at_a_time:
        return list(moto_app(environ, start_response))


run_simple("127.0.0.1", int(sys.argv[1]), app, threaded=True)
EOF
  (cd "$dir" && exec python3 serve.py "$port" >"$dir/server.log" 2>&1) &
  pid=$!
  vss_on_exit "vss_dynamodb_stop $pid"
  url="http://127.0.0.1:$port"
  if ! vss_wait_for 60 vss_dynamodb_ping "$url"; then
    echo "dynamodb: moto on port $port did not answer; its log:" >&2
    tail -n 20 "$dir/server.log" >&2 || true
    return 1
  fi
  export VSS_TEST_DYNAMODB_URL="$url"
  echo "dynamodb: moto $VSS_MOTO_VERSION started on $url (requests serialized) in $dir"
}
