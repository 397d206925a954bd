# shellcheck shell=bash
# PostgreSQL for the tests of vss-backend-postgres (and the server's PostgreSQL tests).
# Sourced by scripts/test; defines `start_postgres`.
#
# Exports, unless already set:
#   VSS_TEST_POSTGRES_URL          a throwaway server shared by all tests (TLS enabled, see below)
#   VSS_TEST_POSTGRES_CA_FILE      the CA that signed that server's certificate (for TLS tests)
#   VSS_TEST_POSTGRES_RESTART_URL  a second throwaway server that one test restarts on purpose,
#   VSS_TEST_POSTGRES_DATADIR      its data directory,
#   VSS_TEST_POSTGRES_BIN          and the pg_ctl that restarts it.
# The restartable server is separate so that restarting it never disturbs tests running in parallel.
#
# Stand-alone use:
#   source scripts/lib.sh; vss_tmp=$(mktemp -d); source scripts/services/postgres.sh; start_postgres

# Runs a command as the owner of the throwaway clusters: PostgreSQL refuses to run as root.
vss_pg_run() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Prints the newest PostgreSQL bin directory, installing the Debian package when there is none.
vss_pg_bindir() {
  local dir
  dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)"
  if [ -z "$dir" ] || [ ! -x "$dir/pg_ctl" ]; then
    vss_apt_install postgresql || return 1
    dir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)"
  fi
  [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] || return 1
  echo "$dir"
}

# Starts one throwaway cluster named $2 with the binaries in $1. $3 = tls also serves TLS;
# $3 = durable keeps PostgreSQL's durable defaults (fsync on), for benchmarks.
# Sets vss_pg_port and vss_pg_datadir.
vss_pg_start_instance() {
  local bindir="$1" name="$2" mode="${3:-}"
  local dir="$vss_tmp/postgres-$name"
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    # The server runs as postgres: let it pass through the temp dir (not list it).
    chmod a+x "$vss_tmp"
    chown postgres: "$dir"
  fi
  vss_pg_run "$bindir/initdb" -D "$dir/data" --auth=trust -U postgres -E UTF8 --no-sync \
    >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    return 1
  }
  vss_pg_port="$(vss_free_port)"
  vss_pg_datadir="$dir/data"
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $vss_pg_port"
    echo "unix_socket_directories = '$dir'"
    echo "max_connections = 300"
    if [ "$mode" = durable ]; then
      echo "shared_buffers = 256MB"
    else
      # Throwaway data: durability across a crash of the machine does not matter here
      # (a clean restart still keeps every committed write).
      echo "fsync = off"
      echo "full_page_writes = off"
    fi
  } >>"$vss_pg_datadir/postgresql.conf"
  if [ "$mode" = "tls" ] && vss_make_certs "$dir"; then
    if [ "$(id -u)" -eq 0 ]; then
      chown postgres: "$dir/server.key" "$dir/server.crt"
    fi
    chmod 600 "$dir/server.key"
    {
      echo "ssl = on"
      echo "ssl_cert_file = '$dir/server.crt'"
      echo "ssl_key_file = '$dir/server.key'"
    } >>"$vss_pg_datadir/postgresql.conf"
    vss_pg_ca_file="$dir/ca.crt"
  fi
  vss_pg_run "$bindir/pg_ctl" -D "$vss_pg_datadir" -l "$dir/server.log" -w -t 60 start \
    >/dev/null 2>&1 || {
    cat "$dir/server.log" >&2
    return 1
  }
  vss_on_exit vss_pg_run "$bindir/pg_ctl" -D "$vss_pg_datadir" -m immediate stop
  vss_wait_for 30 "$bindir/pg_isready" -q -h 127.0.0.1 -p "$vss_pg_port" -U postgres
}

start_postgres() {
  local bindir
  if [ -n "${VSS_TEST_POSTGRES_URL:-}" ] && [ -n "${VSS_TEST_POSTGRES_DATADIR:-}" ]; then
    return 0
  fi
  bindir="$(vss_pg_bindir)" || {
    echo "PostgreSQL binaries not found and could not be installed" >&2
    return 1
  }
  if [ -z "${VSS_TEST_POSTGRES_URL:-}" ]; then
    vss_pg_ca_file=""
    vss_pg_start_instance "$bindir" shared tls || return 1
    # The URL says sslmode=disable so that clients which cannot know the test CA connect
    # in plain text; TLS tests opt in with VSS_TEST_POSTGRES_CA_FILE.
    export VSS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$vss_pg_port/postgres?sslmode=disable"
    if [ -n "$vss_pg_ca_file" ]; then
      export VSS_TEST_POSTGRES_CA_FILE="$vss_pg_ca_file"
    fi
  fi
  if [ -z "${VSS_TEST_POSTGRES_DATADIR:-}" ]; then
    vss_pg_start_instance "$bindir" restart || return 1
    export VSS_TEST_POSTGRES_RESTART_URL="postgres://postgres@127.0.0.1:$vss_pg_port/postgres?sslmode=disable"
    export VSS_TEST_POSTGRES_DATADIR="$vss_pg_datadir"
    export VSS_TEST_POSTGRES_BIN="$bindir/pg_ctl"
  fi
}
