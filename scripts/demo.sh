#!/bin/sh
# make demo: real text from a real model three ways — stories260K dense,
# the same model upcycled to a mixture of 64 experts (top-8), and that
# mixture served by 2 expert nodes on loopback — then the MLA path on a
# Kimi-K2-shaped model with random weights. No download, no ../shared:
# the model is committed in testdata/stories260K.
#
# Environment (the Makefile sets them): BIN (binaries, default bin), OUT
# (outputs, default out), DEMO_STORIES (the dense model), DEMO_MODEL (the
# synthetic Kimi-shaped file), DEMO_PROMPT, DEMO_TOKENS, DEMO_PORT (first of
# the loopback ports the nodes listen on; 0: any free ports).
set -eu

BIN=${BIN:-bin}
OUT=${OUT:-out}
STORIES=${DEMO_STORIES:-testdata/stories260K/stories260K.gguf}
KIMI=${DEMO_MODEL:-$OUT/demo-kimi-k2-mini.Q4_K_M.gguf}
PROMPT=${DEMO_PROMPT:-Once upon a time}
N=${DEMO_TOKENS:-64}
PORT=${DEMO_PORT:-47310}
MOE=$OUT/demo-stories260K-moe64.gguf

NODE_PIDS=
# stop_nodes sends SIGTERM to the expert nodes this script started and
# waits for them; it runs on every exit, failures and ^C included.
stop_nodes() {
	for pid in $NODE_PIDS; do kill "$pid" 2>/dev/null || true; done
	for pid in $NODE_PIDS; do wait "$pid" 2>/dev/null || true; done
	NODE_PIDS=
}
trap stop_nodes EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

header() { printf '\n=== %s\n' "$*"; }

# say prints a command as one could type it.
say() {
	line=
	for a in "$@"; do
		case $a in
		*[!A-Za-z0-9_./:,=@%+-]* | '') line="$line '$a'" ;;
		*) line="$line $a" ;;
		esac
	done
	printf '+%s\n' "$line"
}

# show prints a command, then runs it.
show() {
	say "$@"
	"$@"
}

# generate NAME ARGS...: coordinator run with the text in $OUT/demo-NAME.txt
# and the log in $OUT/demo-NAME.log; prints the text, then the timings.
generate() {
	name=$1
	shift
	say "$BIN/coordinator" run "$@"
	if ! "$BIN/coordinator" run "$@" >"$OUT/demo-$name.txt" 2>"$OUT/demo-$name.log"; then
		cat "$OUT/demo-$name.log" >&2
		return 1
	fi
	cat "$OUT/demo-$name.txt"
	echo
	grep -E 'expert placement|routing experts|eval time|^layer' "$OUT/demo-$name.log" || true
}

# same NAME: says whether the text of NAME is the dense model's.
same() {
	if cmp -s "$OUT/demo-dense.txt" "$OUT/demo-$1.txt"; then
		echo "-> the same text as the dense model, token for token"
	else
		echo "-> NOT the same text as the dense model (see $OUT/demo-dense.txt and $OUT/demo-$1.txt)"
	fi
}

# start_node NAME EXPERTS PORT HEALTH_PORT: an expert node in the background,
# logging to $OUT/demo-node-NAME.log.
start_node() {
	name=$1 experts=$2 port=$3 health=$4
	set -- -m "$MOE" --listen "127.0.0.1:$port" --experts "$experts" -t 1 --shutdown-timeout 5s
	# Newer expert nodes serve plaintext health on their own port (default
	# 127.0.0.1:7079): give each node its own so the two do not collide.
	if "$BIN/expertnode" --help 2>&1 | grep -q -- '--health-listen'; then
		set -- "$@" --health-listen "127.0.0.1:$health"
	fi
	printf '%s &\n' "$(say "$BIN/expertnode" "$@")"
	"$BIN/expertnode" "$@" >"$OUT/demo-node-$name.log" 2>&1 &
	NODE_PIDS="$NODE_PIDS $!"
}

# alive PID: whether the process runs (not exited, not a zombie waiting to
# be reaped: kill -0 succeeds on those).
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	if [ -r "/proc/$1/stat" ]; then
		state=$(cut -d' ' -f3 "/proc/$1/stat")
		[ "$state" != Z ] || return 1
	fi
}

# serving NAME PID: waits until the node logs that it serves (polling its
# log; a node that exits or takes 30s fails the demo) and prints its address.
serving() {
	log=$OUT/demo-node-$1.log
	i=0
	while :; do
		addr=$(sed -n -e 's/.*msg="expert node serving" addr=\([^ ]*\).*/\1/p' \
			-e 's/.*"msg":"expert node serving","addr":"\([^"]*\)".*/\1/p' "$log")
		if [ -n "$addr" ]; then
			echo "$addr"
			return 0
		fi
		if ! alive "$2"; then
			echo "expert node $1 exited (a port in use? DEMO_PORT=0 picks free ports):" >&2
			cat "$log" >&2
			return 1
		fi
		i=$((i + 1))
		if [ "$i" -ge 300 ]; then
			echo "expert node $1 not serving after 30s:" >&2
			cat "$log" >&2
			return 1
		fi
		sleep 0.1
	done
}

mkdir -p "$OUT"

header "1/4 stories260K: a real llama (260K parameters, F32) trained on TinyStories, dense FFN; greedy, $N tokens"
generate dense -m "$STORIES" -p "$PROMPT" -n "$N" --temp 0

header "2/4 the same model upcycled to 64 experts, top-8: each expert a copy of the FFN, router renormalised, so the same function on the MoE path"
show "$BIN/ixctl" upcycle "$STORIES" "$MOE" --experts 64 --top-k 8 --seed 1 --no-progress
generate moe -m "$MOE" -p "$PROMPT" -n "$N" --temp 0 --expert-stats
same moe

header "3/4 that MoE over 2 expert nodes on loopback (gRPC): node a holds experts 0-31, node b 32-63 of every layer; the coordinator none"
if [ "$PORT" = 0 ]; then
	pa=0 pb=0 ha=0 hb=0
else
	pa=$PORT pb=$((PORT + 1)) ha=$((PORT + 2)) hb=$((PORT + 3))
fi
start_node a 0-31 "$pa" "$ha"
pid_a=$!
start_node b 32-63 "$pb" "$hb"
pid_b=$!
addr_a=$(serving a "$pid_a")
addr_b=$(serving b "$pid_b")
echo "node a serving on $addr_a, node b on $addr_b"
generate cluster -m "$MOE" -p "$PROMPT" -n "$N" --temp 0 --nodes "$addr_a,$addr_b" --local-experts=false
same cluster
stop_nodes
for n in a b; do
	calls=$(sed -n 's/.*msg="expert node stopped" forward_calls=\([0-9]*\).*/\1/p' "$OUT/demo-node-$n.log")
	echo "node $n: ${calls:-?} Forward calls served, stopped (log: $OUT/demo-node-$n.log)"
done

header "4/4 a Kimi-K2-shaped MoE (MLA attention, 64 routed experts top-8 with sigmoid routing, a shared expert): RANDOM weights from ixctl synth, so the text is gibberish by design; it shows the MLA path"
if [ ! -f "$KIMI" ]; then
	show "$BIN/ixctl" synth --preset kimi-k2-mini --layers 3 --dim 256 --experts 64 \
		--type Q4_K_M --seed 1 --no-progress --out "$KIMI"
fi
show "$BIN/coordinator" inspect "$KIMI" | head -9
generate kimi -m "$KIMI" -p "The mixture of experts" -n 48 --temp 0.7 --seed 1 --expert-stats
echo
echo "outputs: $OUT/demo-*.txt (text), $OUT/demo-*.log (timings, node logs)"
