# shellcheck shell=bash
# apt-get for the scripts that fetch Debian's packages (prometheus.sh, build-release.sh, build-image.sh). Tests run
# those scripts in parallel, and apt allows one process at a time on its lists and its dpkg database: calls take
# turns on one lock per machine, and wait for another program's apt (DPkg::Lock::Timeout) rather than failing.

apt_get() {
	flock "${TMPDIR:-/tmp}/qlik-license-reclaimer-apt.lock" \
		env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@"
}

# apt_install PACKAGE...: installs the packages, reading the package lists first if a fresh machine has none.
apt_install() {
	apt_get install -y -q --no-install-recommends "$@" >&2 ||
		{ apt_get update -q >&2 && apt_get install -y -q --no-install-recommends "$@" >&2; }
}
