# Shared helpers for the scripts that start throwaway services.
# Sourced, not run.

vss_cleanups=()

# Registers a command to run when the calling script exits (last in, first out).
vss_on_exit() {
  vss_cleanups+=("$1")
}

vss_cleanup() {
  local i
  for ((i = ${#vss_cleanups[@]} - 1; i >= 0; i--)); do
    eval "${vss_cleanups[$i]}" >/dev/null 2>&1 || true
  done
  vss_cleanups=()
  if [ -n "${vss_tmp:-}" ] && [ -d "$vss_tmp" ]; then
    rm -rf "$vss_tmp" || true
  fi
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
