# shellcheck shell=bash
# Throwaway Redis for the tests of crates/vss-backend-redis. Sourced by scripts/test.
#
# start_redis: unless VSS_TEST_REDIS_URL is already set, starts a redis-server
# bound to 127.0.0.1 on a free port, with its data under "$vss_tmp/redis" and
# AOF on with `appendfsync always` (so the backend's durability guard accepts
# it), also serving TLS on a second port with a certificate from a throwaway
# CA, waits until it answers PING, and exports:
#   VSS_TEST_REDIS_URL       redis://127.0.0.1:PORT
#   VSS_TEST_REDIS_TLS_URL   rediss://127.0.0.1:TLS_PORT (the same server)
#   VSS_TEST_REDIS_CA_FILE   the CA that signed its certificate
#   VSS_TEST_REDIS_SERVER    the redis-server binary, which the restart, cluster
#                            and durability-guard tests run as their own children
# Its stop is registered with vss_on_exit. Never touches any other Redis.

# Succeeds when the Redis on port $1 answers PING with PONG (not LOADING or an error).
vss_redis_ping() {
  [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]
}

# Stops the Redis on port $1 whose pid file is $2, and waits (bounded) until it is gone.
vss_redis_stop() {
  local port="$1" pidfile="$2"
  redis-cli -h 127.0.0.1 -p "$port" shutdown >/dev/null 2>&1 || true
  vss_stop_pid "$(cat "$pidfile" 2>/dev/null || true)" 10 wait
}

start_redis() {
  if [ -n "${VSS_TEST_REDIS_URL:-}" ]; then
    echo "redis: using VSS_TEST_REDIS_URL from the environment"
    if [ -z "${VSS_TEST_REDIS_SERVER:-}" ] && command -v redis-server >/dev/null 2>&1; then
      VSS_TEST_REDIS_SERVER="$(command -v redis-server)"
      export VSS_TEST_REDIS_SERVER
    fi
    return 0
  fi
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    vss_apt_install redis-server || return 1
  fi

  local bin port tls_port dir
  local tls_args=()
  bin="$(command -v redis-server)"
  port="$(vss_free_port)"
  tls_port="$(vss_free_port)"
  dir="$vss_tmp/redis"
  mkdir -p "$dir"
  if vss_make_certs "$dir"; then
    tls_args=(--tls-port "$tls_port" --tls-cert-file "$dir/server.crt"
      --tls-key-file "$dir/server.key" --tls-ca-cert-file "$dir/ca.crt" --tls-auth-clients no)
  else
    echo "redis: could not make TLS certificates; serving plain TCP only" >&2
  fi
  "$bin" --bind 127.0.0.1 --port "$port" --dir "$dir" \
    --appendonly yes --appendfsync always --save '' "${tls_args[@]}" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" || return 1
  vss_on_exit vss_redis_stop "$port" "$dir/redis.pid"
  if ! vss_wait_for 30 vss_redis_ping "$port"; then
    echo "redis: redis-server on port $port did not answer; its log:" >&2
    tail -n 20 "$dir/redis.log" >&2 || true
    return 1
  fi
  export VSS_TEST_REDIS_URL="redis://127.0.0.1:$port"
  export VSS_TEST_REDIS_SERVER="$bin"
  if [ "${#tls_args[@]}" -gt 0 ]; then
    export VSS_TEST_REDIS_TLS_URL="rediss://127.0.0.1:$tls_port"
    export VSS_TEST_REDIS_CA_FILE="$dir/ca.crt"
  fi
  echo "redis: started on 127.0.0.1:$port (AOF, appendfsync always) in $dir"
}
