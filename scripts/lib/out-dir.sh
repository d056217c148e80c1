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

log() { printf '%s: %s\n' "$TOOL_NAME" "$*" >&2; }
die() {
	log "$*"
	exit 1
}
