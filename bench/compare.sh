#!/usr/bin/env bash
# compare.sh: the side-by-side comparison of issue 9, on this machine.
#
# Peers, each started and stopped by PID in turn:
#   wasmilter   `wasmilter serve` with the stamp, greylist and delay-notification
#               plugins, the header cache and the bbolt ledger (greylist with an
#               allow-list covering the bench's clients, so every message passes
#               but the greylist hook still runs on every message)
#   gomilter    go-milter v0.5.0's NoOpMilter (cmd/wasmilter-bench/gomilter-noop)
#   libmilter   a C libmilter no-op negotiating v6 with no-reply flags (noop-milter.c)
#   opendkim    OpenDKIM in signing mode, with its own config and a fresh key
# For each peer, over TCP and over a unix socket:
#   1. milter level: wasmilter-bench at -c 8 and -c 64 (msgs/s, p50/p90/p99,
#      milter CPU per message);
#   2. end to end: Postfix's smtp-source, 8 sessions -> a Postfix of its own
#      (queue on tmpfs, loopback only, discard delivery) with the peer as
#      smtpd_milters; msgs/s relative to the same Postfix with no milter.
#
# Every run is bounded (message counts and timeouts), all traffic stays on
# 127.0.0.1 and unix sockets, and everything started is stopped on exit.
# Needs root (Postfix), Go, gcc, and the Debian packages postfix,
# libmilter-dev, opendkim, opendkim-tools and jq.
#
# usage: bench/compare.sh [-n MILTER_MSGS] [-d MILTER_SECONDS] [-e E2E_MSGS]
#                         [-t E2E_SECONDS] [-p PEERS] [-x TRANSPORTS] [-o DIR]
#   -n  messages per milter-level run (default 20000)
#   -d  time bound of a milter-level run, seconds (default 15)
#   -e  messages per end-to-end run (default 3000)
#   -t  time bound of an end-to-end run, seconds (default 25)
#   -p  peers, space separated (default "wasmilter gomilter libmilter opendkim")
#   -x  transports (default "unix tcp")
#   -o  keep raw results (JSON, logs) in DIR
# Markdown tables go to stdout, progress to stderr.
set -euo pipefail

MILTER_MSGS=20000
MILTER_SECS=15
E2E_MSGS=3000
E2E_SECS=25
PEERS="wasmilter gomilter libmilter opendkim"
TRANSPORTS="unix tcp"
KEEP=""
while getopts "n:d:e:t:p:x:o:h" opt; do
	case $opt in
	n) MILTER_MSGS=$OPTARG ;;
	d) MILTER_SECS=$OPTARG ;;
	e) E2E_MSGS=$OPTARG ;;
	t) E2E_SECS=$OPTARG ;;
	p) PEERS=$OPTARG ;;
	x) TRANSPORTS=$OPTARG ;;
	o) KEEP=$OPTARG ;;
	*) sed -n '2,34p' "$0" >&2; exit 2 ;;
	esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
# The whole comparison may take this long; a watchdog ends it after that.
DEADLINE_SECS=${DEADLINE_SECS:-1500}

log() { printf '%s compare: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- processes, always cleaned up -------------------------------------------

PIDS=()        # every background process started, stopped in cleanup
POSTFIX_DIR="" # the running Postfix instance, if any

# stop_pid ends one process we started: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
	local pid=$1
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ -n "$POSTFIX_DIR" ] && postfix_stop
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	if [ -n "$KEEP" ] && [ -d "${WORK:-}" ]; then
		mkdir -p "$KEEP" && cp -r "$WORK"/results "$WORK"/logs "$KEEP"/ 2>/dev/null || true
	fi
	[ -d "${WORK:-}" ] && rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_bg LOG CMD...: runs CMD in the background, its output to LOG; the
# PID is in $BG_PID and recorded for cleanup.
start_bg() {
	local out=$1; shift
	"$@" >"$out" 2>&1 &
	BG_PID=$!
	PIDS+=("$BG_PID")
}

# forget_pid removes a stopped PID from the cleanup list.
forget_pid() {
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

# wait_until SECONDS CMD...: polls CMD every 20 ms until it succeeds.
wait_until() {
	local limit=$1; shift
	local end=$(($(date +%s%N) + limit * 1000000000))
	until "$@" 2>/dev/null; do
		[ "$(date +%s%N)" -lt "$end" ] || return 1
		sleep 0.02
	done
}

tcp_listening() { [ -n "$(ss -Htln "sport = :$1")" ]; }

# free_port picks an unused loopback TCP port.
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((30000 + RANDOM % 30000))
		tcp_listening "$p" || { echo "$p"; return; }
	done
	die "no free port"
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# cpu_ms PID: user+system CPU time of a process so far, in ms.
cpu_ms() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print int(($12 + $13) * 1000 / hz) }' "/proc/$1/stat"
}

vm_kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

# --- preparation --------------------------------------------------------------

need() { command -v "$1" >/dev/null || die "$1 is missing ($2)"; }

prepare() {
	[ "$(id -u)" = 0 ] || die "run as root: Postfix instances need it"
	need go "Go toolchain"
	need gcc "apt-get install gcc"
	need jq "apt-get install jq"
	need postfix "apt-get install postfix"
	need smtp-source "Debian's postfix package"
	need opendkim "apt-get install opendkim (keep its service stopped)"
	need opendkim-genkey "apt-get install opendkim-tools"
	[ -f /usr/include/libmilter/mfapi.h ] || die "libmilter headers missing: apt-get install libmilter-dev"

	# Queue, sockets and logs on tmpfs when there is one.
	local base=/tmp
	[ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm
	WORK=$(mktemp -d "$base/wasmilter-compare.XXXXXX")
	chmod 755 "$WORK" # Postfix's smtpd (user postfix) must reach the unix sockets
	mkdir -p "$WORK"/bin "$WORK"/results "$WORK"/logs "$WORK"/sock
	chmod 777 "$WORK"/sock
	log "work dir $WORK ($(df -T "$WORK" | awk 'NR==2 { print $2 }'))"

	log "building"
	(cd "$REPO" &&
		go build -o "$WORK"/bin/wasmilter ./cmd/wasmilter &&
		go build -o "$WORK"/bin/wasmilter-bench ./cmd/wasmilter-bench &&
		go build -o "$WORK"/bin/gomilter-noop ./cmd/wasmilter-bench/gomilter-noop &&
		GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o "$WORK"/bin/greylist.wasm ./examples/greylist) ||
		die "go build failed"
	gcc -O2 -Wall -o "$WORK"/bin/noop-milter "$REPO"/bench/noop-milter.c -lmilter -lpthread ||
		die "building noop-milter.c failed"
	cp "$REPO"/loadgen/newsletter.eml "$WORK"/msg.eml
	BENCH="$WORK/bin/wasmilter-bench"
}

# --- peers --------------------------------------------------------------------
# start_PEER TRANSPORT sets PEER_PID, MILTER (Postfix notation, also what
# wasmilter-bench takes) and PEER_LOG.

start_wasmilter() {
	local transport=$1 dir="$WORK/wasmilter" listen
	mkdir -p "$dir" # keeps var/cache/wasm and var/ledger.db across starts
	if [ "$transport" = unix ]; then
		listen="unix:$WORK/sock/wasmilter.sock"
	else
		listen="inet:127.0.0.1:$(free_port)"
	fi
	cp "$WORK"/bin/greylist.wasm "$dir"/
	cat >"$dir"/bench.toml <<EOF
# The configuration issue 9 names: stamp, delay notification and greylist
# loaded, the header cache and the bbolt ledger active (defaults).
[milter]
listen = "$listen"
socket_mode = "0666"

[admin]
listen = "127.0.0.1:$(free_port)"

[notify]
# Nothing is deferred in the bench, so nothing is ever sent here.
smtp = "127.0.0.1:9"

[[plugins]]
name = "stamp"
path = "builtin:stamp"

[[plugins]]
name = "greylist"
path = "greylist.wasm"
on_error = "continue"

[plugins.config]
# The bench's clients: loadgen's 198.51.100.0/24, Postfix's 127.0.0.1.
# Allowed, so every message passes; the headers hook still runs for each.
allow.networks = ["127.0.0.0/8", "198.51.100.0/24"]
EOF
	PEER_LOG="$WORK/logs/wasmilter-$transport.log"
	local t0; t0=$(date +%s%N)
	start_bg "$PEER_LOG" bash -c "cd '$dir' && exec '$WORK/bin/wasmilter' serve -config bench.toml"
	PEER_PID=$BG_PID
	wait_until 30 grep -q 'msg=serving' "$PEER_LOG" || { cat "$PEER_LOG" >&2; die "wasmilter did not start"; }
	local ms=$((($(date +%s%N) - t0) / 1000000))
	STARTS+=("$ms")
	log "wasmilter ($transport) serving after $ms ms, pid $PEER_PID"
	MILTER=$listen
}

start_gomilter() {
	local transport=$1
	if [ "$transport" = unix ]; then
		MILTER="unix:$WORK/sock/gomilter.sock"
	else
		MILTER="inet:127.0.0.1:$(free_port)"
	fi
	PEER_LOG="$WORK/logs/gomilter-$transport.log"
	start_bg "$PEER_LOG" "$WORK"/bin/gomilter-noop -listen "$MILTER" -mode 0666
	PEER_PID=$BG_PID
	wait_until 10 grep -q serving "$PEER_LOG" || die "gomilter-noop did not start"
}

# libmilter_spec turns Postfix notation into libmilter's.
libmilter_spec() {
	case $1 in
	unix:*) echo "$1" ;;
	inet:*) local hp=${1#inet:}; echo "inet:${hp##*:}@${hp%:*}" ;;
	esac
}

# wait_milter waits until the peer's socket accepts connections.
wait_milter() {
	case $MILTER in
	unix:*) wait_until 10 test -S "${MILTER#unix:}" ;;
	inet:*) wait_until 10 tcp_listening "${MILTER##*:}" ;;
	esac
}

start_libmilter() {
	local transport=$1
	if [ "$transport" = unix ]; then
		MILTER="unix:$WORK/sock/libmilter.sock"
	else
		MILTER="inet:127.0.0.1:$(free_port)"
	fi
	PEER_LOG="$WORK/logs/libmilter-$transport.log"
	# libmilter creates the socket with the umask's mode.
	start_bg "$PEER_LOG" bash -c "umask 0; exec '$WORK/bin/noop-milter' -p '$(libmilter_spec "$MILTER")'"
	PEER_PID=$BG_PID
	wait_milter || die "noop-milter did not start: $(cat "$PEER_LOG")"
	[ "$transport" = unix ] && chmod 666 "${MILTER#unix:}"
	return 0
}

# OpenDKIM signs for the bench message's From domain with a fresh key.
start_opendkim() {
	local transport=$1 dir="$WORK/opendkim"
	mkdir -p "$dir"
	if [ ! -f "$dir"/bench.private ]; then
		opendkim-genkey -D "$dir" -d news.example.com -s bench -b 2048 || die "opendkim-genkey failed"
	fi
	if [ "$transport" = unix ]; then
		MILTER="unix:$WORK/sock/opendkim.sock"
	else
		MILTER="inet:127.0.0.1:$(free_port)"
	fi
	cat >"$dir"/opendkim.conf <<EOF
Mode			s
Domain			news.example.com
Selector		bench
KeyFile			$dir/bench.private
Socket			$(libmilter_spec "$MILTER")
UMask			000
# Every client is "internal", so every message is signed.
InternalHosts		0.0.0.0/0
Canonicalization	relaxed/simple
SignatureAlgorithm	rsa-sha256
Background		no
Syslog			no
RequireSafeKeys		no
PidFile			$dir/opendkim.pid
EOF
	PEER_LOG="$WORK/logs/opendkim-$transport.log"
	start_bg "$PEER_LOG" opendkim -f -x "$dir"/opendkim.conf
	PEER_PID=$BG_PID
	wait_milter || die "opendkim did not start: $(cat "$PEER_LOG")"
}

stop_peer() {
	stop_pid "$PEER_PID"
	forget_pid "$PEER_PID"
}

# --- milter-level runs ----------------------------------------------------------

# milter_run PEER TRANSPORT CONC: one wasmilter-bench run, a table row.
milter_run() {
	local peer=$1 transport=$2 conc=$3 load out
	load=$(loadavg)
	out="$WORK/results/milter-$peer-$transport-c$conc.json"
	log "milter level: $peer $transport -c $conc (load $load)"
	if ! timeout $((MILTER_SECS + 30)) "$BENCH" -milter "$MILTER" -c "$conc" -n "$MILTER_MSGS" -d "${MILTER_SECS}s" \
		-pid "$PEER_PID" -json >"$out" 2>"$out.err"; then
		log "$peer $transport -c $conc failed: $(head -c 600 "$out.err")"
	fi
	jq -r --arg peer "$peer" --arg tr "$transport" --arg load "$load" '
		def ms: (. / 1000 * 100 | round / 100 | tostring) + " ms";
		"| \($peer) | \($tr) | \(.concurrency) | \(.msgs_per_s | round) | \(.latency_us.p50 | ms) | \(.latency_us.p90 | ms) | \(.latency_us.p99 | ms) | \(.server_cpu.per_message_us // 0 | round) µs | \(.client_cpu.per_message_us // 0 | round) µs | \(.negotiated.version // "-")/\(.negotiated.protocol // "-") | \(.messages)/\(.errors) | \($load) |"
	' "$out" >>"$WORK/results/milter.md" 2>/dev/null || echo "| $peer | $transport | $conc | failed | | | | | | | | $load |" >>"$WORK/results/milter.md"
}

# --- Postfix end to end ---------------------------------------------------------

# postfix_start MILTER: a fresh Postfix instance with MILTER ("" for none).
postfix_start() {
	local milter=$1 d="$WORK/postfix"
	rm -rf "$d"
	mkdir -p "$d"/etc "$d"/queue "$d"/data
	chown postfix "$d"/data
	SMTP_PORT=$(free_port)
	cat >"$d"/etc/main.cf <<EOF
# Written by wasmilter's bench/compare.sh: loopback only, no DNS, discard
# delivery (the cheapest), the milter under test on smtpd.
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $d/maillog
maillog_file_prefixes = $d
myhostname = mta.wasmilter.test
mydomain = wasmilter.test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains =
mynetworks = 127.0.0.0/8
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
default_transport = discard
relay_transport = discard
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
smtpd_tls_security_level = none
smtpd_error_sleep_time = 0s
in_flow_delay = 0s
biff = no
default_process_limit = 50
milter_protocol = 6
milter_default_action = tempfail
milter_connect_timeout = 10s
milter_command_timeout = 10s
milter_content_timeout = 30s
smtpd_milters = $milter
non_smtpd_milters =
EOF
	cat >"$d"/etc/master.cf <<EOF
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
pickup    unix  n - n 60   1 pickup
cleanup   unix  n - n -    0 cleanup
qmgr      unix  n - n 300  1 qmgr
rewrite   unix  - - n -    - trivial-rewrite
bounce    unix  - - n -    0 bounce
defer     unix  - - n -    0 bounce
trace     unix  - - n -    0 bounce
verify    unix  - - n -    1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -    - proxymap
showq     unix  n - n -    - showq
error     unix  - - n -    - error
retry     unix  - - n -    - error
discard   unix  - - n -    - discard
anvil     unix  - - n -    1 anvil
scache    unix  - - n -    1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
	# Postfix restarts daemons whose main.cf looks newer than they are.
	touch -d '-1 minute' "$d"/etc/main.cf "$d"/etc/master.cf
	POSTFIX_DIR=$d
	PATH=/usr/sbin:/usr/bin:/sbin:/bin timeout 30 postfix -c "$d"/etc start >"$WORK/logs/postfix-start.log" 2>&1 ||
		die "postfix start failed: $(cat "$WORK/logs/postfix-start.log")"
	wait_until 10 tcp_listening "$SMTP_PORT" || die "postfix smtpd not listening"
}

# postfix_stop stops the instance: `postfix abort` (SIGTERM to the master,
# which takes its children down), then SIGKILL for any survivor of it.
postfix_stop() {
	local d=$POSTFIX_DIR pid
	POSTFIX_DIR=""
	[ -f "$d"/queue/pid/master.pid ] || return 0
	pid=$(tr -d ' ' <"$d"/queue/pid/master.pid)
	PATH=/usr/sbin:/usr/bin:/sbin:/bin timeout 10 postfix -c "$d"/etc abort >/dev/null 2>&1 || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	# Children of that master, if any outlived it.
	for p in $(grep -l "MAIL_CONFIG=$d/etc" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3); do
		kill -KILL "$p" 2>/dev/null || true
	done
}

queue_size() {
	find "$POSTFIX_DIR"/queue/incoming "$POSTFIX_DIR"/queue/active "$POSTFIX_DIR"/queue/maildrop \
		"$POSTFIX_DIR"/queue/deferred -type f 2>/dev/null | wc -l
}
queue_empty() { [ "$(queue_size)" = 0 ]; }

# smtp_source COUNT: sends COUNT messages in 8 sessions, bounded by
# E2E_SECS; prints "messages elapsed_ms" (messages whose DATA completed).
smtp_source() {
	local count=$1 out="$WORK/logs/smtp-source.out" t0 t1 n
	t0=$(date +%s%N)
	timeout -s INT "$E2E_SECS" smtp-source -c -s 8 -m "$count" -N -F "$WORK"/msg.eml \
		-f news@news.example.com -t reader@example.org -M client.wasmilter.test \
		"127.0.0.1:$SMTP_PORT" >"$out" 2>&1 || true
	t1=$(date +%s%N)
	# -c prints a running counter, one number per completed DATA.
	n=$(tr '\r' '\n' <"$out" | grep -Eo '^[0-9]+$' | tail -1 || true)
	echo "${n:-0} $(((t1 - t0) / 1000000))"
}

# e2e_run LABEL TRANSPORT MILTER: Postfix with MILTER, a table row.
e2e_run() {
	local label=$1 transport=$2 milter=$3 load n ms rate cpu0 cpu1 cpu="-" sent rejected
	postfix_start "$milter"
	smtp_source 50 >/dev/null # warm up: smtpd and cleanup processes exist
	wait_until 30 queue_empty || log "warm-up queue did not drain"
	load=$(loadavg)
	log "end to end: $label $transport (load $load)"
	[ -n "${PEER_PID:-}" ] && [ "$label" != postfix ] && cpu0=$(cpu_ms "$PEER_PID")
	read -r n ms < <(smtp_source "$E2E_MSGS")
	[ -n "${cpu0:-}" ] && cpu1=$(cpu_ms "$PEER_PID") && [ "$n" -gt 0 ] && cpu="$(((cpu1 - cpu0) * 1000 / n)) µs"
	wait_until 30 queue_empty || log "queue did not drain: $(queue_size) left"
	sent=$(grep -c 'status=sent' "$POSTFIX_DIR"/maillog || true)
	rejected=$(grep -Ec 'milter-(reject|discard)|status=deferred|warning: milter' "$POSTFIX_DIR"/maillog || true)
	postfix_stop
	rate=$(awk -v n="$n" -v ms="$ms" 'BEGIN { printf "%d", (ms > 0) ? n * 1000 / ms : 0 }')
	[ "$label" = postfix ] && BASELINE=$rate
	local rel="-"
	[ -n "${BASELINE:-}" ] && [ "$BASELINE" -gt 0 ] && rel=$(awk -v r="$rate" -v b="$BASELINE" 'BEGIN { printf "%d%%", r * 100 / b }')
	echo "| $label | $transport | $rate | $rel | $cpu | $n in $ms ms | $sent | $rejected | $load |" >>"$WORK/results/e2e.md"
	cpu0=""
}

# --- main -----------------------------------------------------------------------

# watchdog ends the comparison after DEADLINE_SECS. Its sleep is a child it
# kills when it is stopped itself, so no orphan keeps the output open.
watchdog() {
	local s
	trap 'kill "$s" 2>/dev/null; exit 0' TERM
	sleep "$DEADLINE_SECS" </dev/null >/dev/null 2>&1 &
	s=$!
	wait "$s"
	log "deadline of ${DEADLINE_SECS}s reached"
	kill -TERM $$
}

main() {
	prepare
	watchdog &
	PIDS+=("$!")
	STARTS=()
	echo "| milter | transport | -c | msgs/s | p50 | p90 | p99 | milter CPU/msg | bench CPU/msg | negotiated v/protocol | msgs/errors | load before |" >"$WORK/results/milter.md"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |" >>"$WORK/results/milter.md"
	echo "| milter | transport | msgs/s | vs no milter | milter CPU/msg | sent | delivered | milter errors | load before |" >"$WORK/results/e2e.md"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |" >>"$WORK/results/e2e.md"

	PEER_PID=""
	e2e_run postfix - ""
	local peer transport rss="" hwm=""
	for transport in $TRANSPORTS; do
		for peer in $PEERS; do
			"start_$peer" "$transport"
			milter_run "$peer" "$transport" 8
			milter_run "$peer" "$transport" 64
			if [ "$peer" = wasmilter ]; then
				rss=$(vm_kb "$PEER_PID" VmRSS) hwm=$(vm_kb "$PEER_PID" VmHWM)
				RSS_LINE="wasmilter RSS after the -c 64 run ($transport): VmRSS $((rss / 1024)) MiB, peak VmHWM $((hwm / 1024)) MiB"
				log "$RSS_LINE"
				RSS_LINES+=("$RSS_LINE")
			fi
			e2e_run "$peer" "$transport" "$MILTER"
			stop_peer
		done
	done
	e2e_run postfix - "" # the baseline again, to see the drift

	echo "## Machine"
	echo
	echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3), Postfix $(postconf -d mail_version 2>/dev/null | cut -d' ' -f3), $(opendkim -V | head -1)"
	echo
	echo "## Milter level (wasmilter-bench: -n $MILTER_MSGS -d ${MILTER_SECS}s, 10 messages per connection)"
	echo
	cat "$WORK/results/milter.md"
	echo
	echo "## End to end (smtp-source -s 8 -m $E2E_MSGS -N -F newsletter.eml -> Postfix -> discard)"
	echo
	cat "$WORK/results/e2e.md"
	echo
	echo "## wasmilter start and memory"
	echo
	echo "Start to \"serving\" log line, in order (the first with a cold compilation cache): ${STARTS[*]} ms"
	echo
	for l in "${RSS_LINES[@]}"; do echo "- $l"; done
}

RSS_LINES=()
main
