# shellcheck shell=bash
# A local DynamoDB-API server for the tests of crates/vss-backend-dynamodb.
# Sourced by scripts/test; defines `start_dynamodb`.
#
# start_dynamodb: unless VSS_TEST_DYNAMODB_URL is already set, starts moto's
# DynamoDB server (PyPI package moto[server], installed when missing into a
# virtual environment under $(vss_cache_dir), see vss_moto_python) bound to
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

# Prints the python of a virtual environment holding moto, under the scripts'
# own cache directory (never the system's Python, which Debian refuses to
# install into: PEP 668), creating it when missing. A stock Debian python3
# needs its venv module (package python3-venv), installed when missing.
vss_moto_python() {
  local venv
  venv="$(vss_cache_dir)/moto-$VSS_MOTO_VERSION" || return 1
  if [ ! -e "$venv/.complete" ]; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      rm -rf "$venv"
      vss_apt_install python3-venv || return 1
      python3 -m venv "$venv" >/dev/null || return 1
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "moto[server]==$VSS_MOTO_VERSION" >&2 || return 1
    touch "$venv/.complete"
  fi
  echo "$venv/bin/python"
}

start_dynamodb() {
  if [ -n "${VSS_TEST_DYNAMODB_URL:-}" ]; then
    echo "dynamodb: using VSS_TEST_DYNAMODB_URL from the environment"
    return 0
  fi
  local python port dir pid url
  python="$(vss_moto_python)" || {
    echo "dynamodb: could not install moto $VSS_MOTO_VERSION into a virtual environment" >&2
    return 1
  }
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
  (cd "$dir" && exec "$python" serve.py "$port" >"$dir/server.log" 2>&1) &
  pid=$!
  vss_on_exit vss_stop_pid "$pid" 10
  url="http://127.0.0.1:$port"
  if ! vss_wait_for 60 vss_dynamodb_ping "$url"; then
    echo "dynamodb: moto on port $port did not answer; its log:" >&2
    tail -n 20 "$dir/server.log" >&2 || true
    return 1
  fi
  export VSS_TEST_DYNAMODB_URL="$url"
  echo "dynamodb: moto $VSS_MOTO_VERSION started on $url (requests serialized) in $dir"
}
