# shellcheck shell=bash
# Helpers shared by the benchmark scripts. Sourced, not run.

# Builds the release binaries, the server with every backend, so that each benchmark
# script reuses one build.
vss_bench_build() {
  cargo build --release --quiet -p vss-bench -p vss-server \
    --features vss-server/sqlite,vss-server/postgres,vss-server/redis,vss-server/dynamodb
  vss_bench_bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"
}

# Starts vss-server with the given flags on a free port, without authentication
# (vss-bench sends none; the server listens on loopback only); sets
# vss_server_pid and vss_server_url. vss_bench_server names another binary,
# vss_bench_auth other --auth methods (their key flags go with the others).
vss_bench_start_server() {
  local port log
  port="$(vss_free_port)"
  log="$vss_tmp/server-$port.log"
  VSS_LOG_LEVEL=warn "${vss_bench_server:-$vss_bench_bin/vss-server}" \
    --bind-address "127.0.0.1:$port" --auth "${vss_bench_auth:-none}" \
    "$@" >"$log" 2>&1 &
  vss_server_pid=$!
  vss_on_exit kill "$vss_server_pid"
  vss_server_url="http://127.0.0.1:$port/vss"
  if ! vss_wait_for 120 grep -q "listening on" "$log"; then
    cat "$log" >&2
    return 1
  fi
}

# Stops the server started last.
vss_bench_stop_server() {
  kill "$vss_server_pid" 2>/dev/null || true
  wait "$vss_server_pid" 2>/dev/null || true
}

# Requests per second of one vss-bench run (its JSON on stdin); failed requests
# are named on stderr, since a rate of failures measures something else.
vss_bench_rps() {
  python3 -c '
import json, sys
runs = json.load(sys.stdin)["runs"]
for r in runs:
    if r["errors"]:
        print("vss-bench %s: failed requests %s" % (r["workload"], r["errors"]), file=sys.stderr)
print(sum(r["rps"] for r in runs) / len(runs))'
}

# Prints "min median max" of the numbers given as arguments.
vss_bench_spread() {
  python3 -c 'import sys,statistics as s; v=sorted(map(float,sys.argv[1:])); print(f"min {v[0]:.3f}  median {s.median(v):.3f}  max {v[-1]:.3f}")' "$@"
}

# Starts a throwaway PostgreSQL with durable settings (fsync on) under $vss_tmp; sets
# vss_bench_pg_port and vss_bench_pg_bindir. Needs scripts/services/postgres.sh.
vss_bench_start_postgres() {
  vss_bench_pg_bindir="$(vss_pg_bindir)"
  vss_pg_start_instance "$vss_bench_pg_bindir" bench durable
  vss_bench_pg_port="$vss_pg_port"
}
