# shellcheck shell=bash
# Shared helpers for the scripts that start throwaway services.
# Sourced, not run. Needs bash 4.3 or newer (name references).

vss_cleanup_count=0

# Registers a command (a function or program and its arguments, kept word for
# word) to run when the calling script exits, last in, first out:
#   vss_on_exit vss_stop_pid "$pid" 10
vss_on_exit() {
  local -n vss_entry="vss_cleanup_$vss_cleanup_count"
  # shellcheck disable=SC2034 # assigned through the name reference
  vss_entry=("$@")
  vss_cleanup_count=$((vss_cleanup_count + 1))
}

vss_cleanup() {
  local i
  for ((i = vss_cleanup_count - 1; i >= 0; i--)); do
    local -n vss_command="vss_cleanup_$i"
    "${vss_command[@]}" >/dev/null 2>&1 || true
    unset "vss_cleanup_$i"
  done
  vss_cleanup_count=0
  if [ -n "${vss_tmp:-}" ] && [ -d "$vss_tmp" ]; then
    rm -rf "$vss_tmp" || true
  fi
}

# Where the scripts keep what they install for themselves (moto's virtual
# environment), outside any checkout: $VSS_CACHE_DIR, else ~/.cache/vss-rs.
vss_cache_dir() {
  local dir="${VSS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vss-rs}"
  mkdir -p "$dir" && echo "$dir"
}

# Prints a TCP port that nothing listens on right now.
vss_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until `cmd...` succeeds, trying every 0.2 s for up to `seconds`.
vss_wait_for() {
  local seconds="$1"
  shift
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      return 1
    fi
    sleep 0.2
  done
}

# Succeeds when no process $1 is left.
vss_gone() {
  ! kill -0 "$1" 2>/dev/null
}

# Stops process $1: waits up to $2 seconds (default 10) for it to end by itself
# (after a shutdown asked for otherwise) or after SIGTERM when $3 is `term`
# (the default), then kills it.
vss_stop_pid() {
  local pid="$1" seconds="${2:-10}" how="${3:-term}"
  [ -n "$pid" ] || return 0
  if [ "$how" = term ]; then
    kill "$pid" 2>/dev/null || true
  fi
  if ! vss_wait_for "$seconds" vss_gone "$pid"; then
    kill -9 "$pid" 2>/dev/null || true
  fi
}

# Installs Debian packages when a command is missing (root on CI and fresh machines).
vss_apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "need root to apt-get install $*" >&2
    return 1
  fi
  if [ -z "${vss_apt_updated:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    vss_apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Makes a throwaway CA (ca.crt) and a server certificate for localhost and
# 127.0.0.1 signed by it (server.crt, server.key), in directory $1.
vss_make_certs() {
  local dir="$1"
  command -v openssl >/dev/null 2>&1 || vss_apt_install openssl || return 1
  (
    cd "$dir" || exit 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout ca.key -out ca.crt -days 30 -subj "/CN=vss-test-ca" &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout server.key -out server.csr -subj "/CN=localhost" &&
      printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
        "keyUsage=digitalSignature" "extendedKeyUsage=serverAuth" >server.ext &&
      openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
        -out server.crt -days 30 -extfile server.ext
  ) >/dev/null 2>&1
}
