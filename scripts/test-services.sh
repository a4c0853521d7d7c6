#!/usr/bin/env bash
# Installs (and, as later issues add them, starts) the real programs the test suite runs
# against, on loopback only. Used by .ci/run on a fresh Debian machine and by developers.
#
#   scripts/test-services.sh install   install missing Debian packages (needs root or sudo)
#
# Tests that need a program skip with a clear message only when it is missing and
# REQUIRE_TEST_SERVICES is not set; .ci/run sets it, so CI fails rather than skips.
set -euo pipefail

# Debian packages the tests use: the mosquitto clients (interoperability tests) and the
# mosquitto broker (the comparison baseline of scripts/bench-compare.sh), openssl
# (s_client probes of the TLS listeners) and sslscan (the external TLS scan of
# TestServeTLSScan), redis-server (with redis-tools' redis-cli, which joins the test
# cluster), postgresql, mariadb-server and slapd (the backends of internal/backend; the
# tests start their own throw-away instances on loopback ports in temporary directories,
# with TLS from a throw-away CA where a test asks for it, through
# internal/backend/testsvc, never the packaged services).
packages=(mosquitto mosquitto-clients openssl sslscan redis-server redis-tools postgresql mariadb-server slapd)

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		echo "test-services: need root or sudo to run: $*" >&2
		return 1
	fi
}

install() {
	local missing=()
	for p in "${packages[@]}"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	if [ ${#missing[@]} -eq 0 ]; then
		echo "test-services: all packages present"
		return 0
	fi
	echo "test-services: installing ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
	# Debian starts the packaged services (mosquitto on 1883, redis on 6379, postgresql on
	# 5432, mariadb on 3306, slapd on 389) where an init system runs; the tests start their
	# own instances on ephemeral ports, so the packaged ones are stopped.
	for svc in redis-server postgresql mariadb slapd; do
		if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
			as_root systemctl stop "$svc" || true
		fi
	done
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
		as_root systemctl stop mosquitto || true
	elif pgrep -x mosquitto >/dev/null 2>&1 && command -v service >/dev/null 2>&1; then
		as_root service mosquitto stop || true
	fi
}

case "${1:-}" in
install) install ;;
*)
	echo "usage: $0 install" >&2
	exit 2
	;;
esac
