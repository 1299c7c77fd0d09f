#!/usr/bin/env bash
# The side-by-side benchmark harness (issue 7): weir against HAProxy and
# NGINX, and against no proxy at all ("direct", the physical limit), on this
# machine, in one run, every workload of the issue. A benchmark, not a test:
# it prints one table and verdict lines and never fails on the numbers.
#
# What it does:
#   1. `cargo build --release --locked` (skip with SKIP_BUILD=1, or give a
#      binary with WEIR_BIN); the binary is target/release/weir.
#   2. Runs the per-family scripts, each of which starts its own backends and
#      proxies on free 127.0.0.1 ports (HAProxy `nbthread N`, NGINX
#      `worker_processes N`, weir `[runtime] worker_threads = N`, N in
#      THREADS, logging off everywhere, HAProxy TCP mode with `option
#      splice-request` and `option splice-response`), interleaves the
#      targets round by round, REPEATS rounds, and stops everything it
#      started on exit:
#      - l4.sh: L4 TCP bulk (iperf3 -P 1, -P 4), connection churn (wrk
#        `Connection: close` through a TCP listener to an NGINX HTTP
#        backend), redis-benchmark PING/SET/GET with -P 1 and -P 16,
#        pgbench -S with 8 clients (a cluster initdb'd in the temp dir), and
#        memory per held idle connection (IDLE_CONNS, proxy RSS growth);
#      - http.sh: L7 HTTP/1.1 keep-alive (wrk -c64) and HTTP/2 (h2load)
#        through one path-prefix route;
#      - udp_dns.sh: dnsperf through weir and NGINX stream to unbound
#        (HAProxy has no generic UDP proxying: n/a).
#   3. Prints ONE table (report.py): workload, target, threads, median,
#      p99, errors, proxy CPU per unit of work, other CPU, ratios to direct,
#      to HAProxy and to NGINX at the same thread count; then one verdict
#      line per workload and thread count against issue 7's targets.
#   4. Unless DOCS=0, writes the table, the verdicts and the run's load
#      average into docs/benchmarks.md (between the harness marker comments,
#      so a re-run replaces them) and draws docs/bench/ratios.png.
#   The raw results and each script's own table are kept in LOG_DIR.
#
# Every load run is bounded in time (`timeout`) and in count; only 127.0.0.1.
# With the defaults it takes about 10 minutes after the build.
#
# Usage: benches/compare/run.sh
# Knobs (environment): REPEATS=3 DURATION=2 THREADS="1 2"
#   WORKLOADS="bulk1 bulk4 churn redis pgbench h1 h2 dns idle"
#   IDLE_CONNS=4000 SKIP_BUILD=0 WEIR_BIN= DOCS=1
#   LOG_DIR=target/bench-compare
# Needs (Debian): haproxy nginx libnginx-mod-stream iperf3 wrk nghttp2-client
#   redis-server redis-tools postgresql unbound dnsperf bind9-dnsutils curl
#   python3-matplotlib iproute2.

set -euo pipefail
# die, need, spawn, cleanup on exit.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPEATS=${REPEATS:-3}
DURATION=${DURATION:-2}
THREADS=${THREADS:-"1 2"}
WORKLOADS=${WORKLOADS:-"bulk1 bulk4 churn redis pgbench h1 h2 dns idle"}
IDLE_CONNS=${IDLE_CONNS:-4000}
DOCS=${DOCS:-1}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG_DIR=${LOG_DIR:-"$root/target/bench-compare"}
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3
"$PY" -c 'import matplotlib' 2> /dev/null || die "missing matplotlib for $PY (install: python3-matplotlib)"

l4=() http=() dns=0
for w in $WORKLOADS; do
    case $w in
    bulk1 | bulk4 | churn | redis | pgbench) l4+=("$w") ;;
    h1 | h2) http+=("$w") ;;
    dns) dns=1 ;;
    idle) ;;
    *) die "unknown workload $w (bulk1 bulk4 churn redis pgbench h1 h2 dns idle)" ;;
    esac
done

start=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average at start: $load_start ($(nproc) CPUs)" >&2

build_weir

mkdir -p "$LOG_DIR"
raw="$LOG_DIR/raw.txt"
: > "$raw"

# The 1-minute load average every 10 s while the benchmarks run (bounded:
# stopped on exit with the other servers, and by its own count).
spawn "$LOG_DIR/loadavg.txt" bash -c 'for ((i = 0; i < 720; i++)); do cut -d" " -f1 /proc/loadavg; sleep 10; done'

common=(env REPEATS="$REPEATS" DURATION="$DURATION" THREADS="$THREADS" SKIP_BUILD=1 WEIR_BIN="$weir_bin")
if ((${#l4[@]})); then
    echo "== L4: ${l4[*]}" >&2
    "${common[@]}" WORKLOADS="${l4[*]}" RESULTS_OUT="$raw" "$here/l4.sh" > "$LOG_DIR/l4.md"
fi
if ((${#http[@]})); then
    echo "== L7: ${http[*]}" >&2
    "${common[@]}" WORKLOADS="${http[*]}" RESULTS_OUT="$raw" "$here/http.sh" > "$LOG_DIR/http.md"
fi
if ((dns)); then
    echo "== UDP: dns" >&2
    "${common[@]}" WORKLOADS="20:100" DNS_SERVER=unbound RESULTS_OUT="$work/dns.txt" \
        "$here/udp_dns.sh" > "$LOG_DIR/udp_dns.md"
    awk '{print "dns", $2, $3, "-", $4, $5, $6, $7, $8}' "$work/dns.txt" >> "$raw"
fi
if [[ " $WORKLOADS " == *" idle "* ]]; then
    echo "== L4: idle ($IDLE_CONNS connections)" >&2
    "${common[@]}" WORKLOADS=idle IDLE_CONNS="$IDLE_CONNS" RESULTS_OUT="$raw" "$here/l4.sh" > "$LOG_DIR/idle.md"
fi

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
during=$(sort -g "$LOG_DIR/loadavg.txt" | awk '{v[NR] = $1} END {if (NR) printf "%s–%s (median %s)", v[1], v[NR], v[int((NR + 1) / 2)]}')
minutes=$(awk -v s=$(($(date +%s) - start)) 'BEGIN {printf "%.1f", s / 60}')
commit=$(git -C "$root" rev-parse --short HEAD 2> /dev/null || echo unknown)
# Debian package versions of the peers and load generators.
versions=$(for pkg in haproxy nginx iperf3 wrk nghttp2-client redis-server postgresql unbound dnsperf; do
    printf '%s %s, ' "$pkg" "$(dpkg-query -W -f='${Version}' "$pkg" 2> /dev/null || echo '?')"
done | sed 's/, $//')
if [[ -n $WEIR_BIN ]]; then
    built="weir binary $WEIR_BIN as given (WEIR_BIN; tree at commit $commit)"
else
    built="weir built at commit $commit"
fi
meta="Run of $(date -u '+%Y-%m-%d %H:%M') UTC, $built, \`REPEATS=$REPEATS DURATION=$DURATION THREADS=\"$THREADS\" IDLE_CONNS=$IDLE_CONNS benches/compare/run.sh\` ($minutes min). Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), shared; load average at start $load_start, during the run $during (1-minute average, sampled every 10 s), at end $load_end. Debian packages: $versions. Medians of $REPEATS runs; p99 in ms; errors summed over the runs (DNS: lost queries); proxy CPU is the target's own CPU time per unit of work (the backend's for direct) and the kernel's (system time's) share of it; other CPU is the median share of the machine's CPU used by processes outside the benchmark during the runs."

echo
docs_args=()
if [[ $DOCS == 1 ]]; then
    docs_args=(--docs "$root/docs/benchmarks.md" --chart "$root/docs/bench/ratios.png" --chart-link bench/ratios.png)
fi
"$PY" "$here/report.py" "$raw" "$(getconf CLK_TCK)" --threads "$THREADS" --meta "$meta" "${docs_args[@]}"
echo
echo "$meta"
