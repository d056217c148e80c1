# shellcheck shell=bash
# Shared by the scripts that build Go tools (etcd, kube-apiserver, helm, promtool) from the Go module proxy.
# Source it after setting TOOL (the prefix of log lines). Nothing is downloaded except through the proxy.

log() { printf '%s: %s\n' "$TOOL" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# single_tool_setup "$@": for a script that builds one tool TOOL into OUT_DIR (its one argument): sets OUT_DIR
# (absolute, created) and BIN (OUT_DIR/TOOL).
single_tool_setup() {
	[[ $# -eq 1 && -n $1 ]] || {
		echo "usage: $0 OUT_DIR" >&2
		exit 2
	}
	mkdir -p "$1"
	OUT_DIR=$(cd "$1" && pwd)
	BIN="$OUT_DIR/$TOOL"
}

# reports_version PATTERN ARGS...: BIN exists, runs with ARGS, and what it prints matches the glob PATTERN.
reports_version() {
	local pattern=$1 out
	shift
	[[ -x $BIN ]] || return 1
	out=$("$BIN" "$@" 2>&1) || return 1
	# shellcheck disable=SC2053 # PATTERN is a glob on purpose
	[[ $out == $pattern ]]
}

# wrapper_module NAME MODULE VERSION GOMOD: writes WORK/go.mod, a throwaway module NAME requiring MODULE at
# VERSION with the `go` and `godebug` lines of MODULE's own go.mod (GOMOD), so the build uses the language version
# and GODEBUG defaults MODULE builds with; sets required_go to that go version.
wrapper_module() {
	{
		echo "module $1"
		echo
		grep -E '^(go|godebug)[[:space:]]' "$4" || true
		echo
		echo "require $2 $3"
	} >"$WORK/go.mod"
	# shellcheck disable=SC2034 # read by the calling script
	required_go=$(sed -n 's/^go[[:space:]]\{1,\}\([0-9.]*\).*/\1/p' "$4")
}

# build_workspace: a temporary WORK directory and the TMP_BIN the build writes before it is moved to BIN, both
# removed on exit.
build_workspace() {
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/$TOOL-build.XXXXXX")
	TMP_BIN="$OUT_DIR/.$TOOL.tmp.$$"
	trap 'heartbeat_stop; rm -rf "$WORK"; rm -f "$TMP_BIN"' EXIT
}

# build_once WHAT: exits (0) when the caller's `have` finds the tool already built; otherwise takes the lock
# OUT_DIR/.TOOL.lock, so that one process builds while others wait, and checks again once it holds it.
build_once() {
	if have; then
		log "$1 already in ${OUT_DIR}"
		exit 0
	fi
	exec 9>"$OUT_DIR/.$TOOL.lock"
	if ! flock -n 9; then
		log "waiting for another process building $1 in ${OUT_DIR}"
		flock 9
	fi
	if have; then
		log "$1 already in ${OUT_DIR}"
		exit 0
	fi
}

# The toolchain on PATH, static binaries, modules from the proxy only (`direct`, a VCS fetch, is dropped).
go_build_env() {
	command -v go >/dev/null 2>&1 || die "the Go toolchain (go) is not on PATH"
	export CGO_ENABLED=0
	export GOFLAGS=-mod=mod
	export GOWORK=off
	export GOTOOLCHAIN=local
	local proxy
	proxy=$(go env GOPROXY | sed 's/[,|]/\n/g' | grep -v -x -e direct -e off -e '' | paste -sd, -) || true
	[[ -n $proxy ]] || die "no module proxy configured (GOPROXY=$(go env GOPROXY))"
	export GOPROXY=$proxy
	log "go: $(go version); GOPROXY=${GOPROXY}; GOMODCACHE=$(go env GOMODCACHE); GOCACHE=$(go env GOCACHE)"
}

# download MODULE@VERSION: prints the path of the module's go.mod file in the module cache.
download() {
	local json gomod
	log "downloading $1"
	json=$(go mod download -json "$1") || die "go mod download $1 failed: $(printf '%s' "$json" | grep '"Error"')"
	gomod=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
	[[ -f $gomod ]] || die "go mod download $1 reported no go.mod file"
	printf '%s\n' "$gomod"
}

# A progress line every minute while a long build runs.
heartbeat_pid=
heartbeat_start() {
	local since=$SECONDS
	(while sleep 60; do log "... still building ($((SECONDS - since))s)"; done) &
	heartbeat_pid=$!
}
heartbeat_stop() {
	if [[ -n $heartbeat_pid ]]; then
		kill "$heartbeat_pid" 2>/dev/null || true
		wait "$heartbeat_pid" 2>/dev/null || true
		heartbeat_pid=
	fi
}
