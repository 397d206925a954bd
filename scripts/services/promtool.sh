# shellcheck shell=bash
# promtool, Prometheus's checker, for the tests of /metrics and of the sample
# Prometheus files in docs/prometheus/. Not a service: a tool the tests run.
# Sourced by scripts/test; defines `start_promtool`.
#
# start_promtool: unless VSS_TEST_PROMTOOL is already set, finds promtool on
# the PATH or installs it from Debian's `prometheus` package (without its
# recommends; the Prometheus server itself is never started), and exports:
#   VSS_TEST_PROMTOOL   the promtool binary

start_promtool() {
  if [ -n "${VSS_TEST_PROMTOOL:-}" ]; then
    echo "promtool: using VSS_TEST_PROMTOOL from the environment"
    return 0
  fi
  if ! command -v promtool >/dev/null 2>&1; then
    vss_apt_install --no-install-recommends prometheus || {
      echo "promtool: could not install Debian's prometheus package" >&2
      return 1
    }
  fi
  VSS_TEST_PROMTOOL="$(command -v promtool)" || return 1
  export VSS_TEST_PROMTOOL
  echo "promtool: $VSS_TEST_PROMTOOL ($("$VSS_TEST_PROMTOOL" --version 2>&1 | head -n 1))"
}
