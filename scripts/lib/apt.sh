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

# deb_download DIR PACKAGE=VERSION...: downloads the packages' .deb files into DIR (nothing is installed), reading
# the package lists first if a fresh machine has none. Fails with a message naming the packages.
deb_download() {
	local dir=$1
	shift
	(cd "$dir" && apt_get download -q "$@" >/dev/null 2>&1) && return 0
	printf 'apt: reading Debian'"'"'s package lists (apt-get update)\n' >&2
	apt_get update -q >/dev/null 2>&1 || { printf 'apt: apt-get update failed\n' >&2; return 1; }
	(cd "$dir" && apt_get download -q "$@" >/dev/null 2>&1) || { printf 'apt: apt-get download %s failed\n' "$*" >&2; return 1; }
}
