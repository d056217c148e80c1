# shellcheck shell=bash
# What the scripts that put a tool into a directory share (prometheus.sh, lua.sh): messages prefixed with the
# tool's name, and OUT_DIR, the one argument, made absolute.

# out_dir_setup NAME ARG...: defines log and die for NAME, and sets OUT_DIR from the arguments (exactly one).
out_dir_setup() {
	TOOL_NAME=$1
	shift
	[[ $# -eq 1 && -n $1 ]] || {
		echo "usage: $0 OUT_DIR" >&2
		exit 2
	}
	mkdir -p "$1"
	OUT_DIR=$(cd "$1" && pwd)
}

# out_dir_lock_unless_done WHAT: takes OUT_DIR's lock (concurrent callers wait for the first), then exits at once
# when `have` (the caller's) finds WHAT there already.
out_dir_lock_unless_done() {
	exec 9>"$OUT_DIR/.$TOOL_NAME.lock"
	flock 9
	if have; then
		log "$1 already in ${OUT_DIR}"
		exit 0
	fi
}

# out_dir_workdir: a temporary directory in WORK, removed when the script exits.
out_dir_workdir() {
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/$TOOL_NAME.XXXXXX")
	trap 'rm -rf "$WORK"' EXIT
}

log() { printf '%s: %s\n' "$TOOL_NAME" "$*" >&2; }
die() {
	log "$*"
	exit 1
}
