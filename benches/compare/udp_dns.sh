#!/usr/bin/env bash
# UDP benchmark: DNS queries per second through weir against NGINX `stream`
# UDP proxying, both in front of the same DNS backend, on the same machine, in
# the same run (issue 3). A benchmark, not a test: it prints a table and never
# fails on the numbers.
#
# What it does:
#   1. `cargo build --release --locked` (skip with SKIP_BUILD=1, or give a
#      binary with WEIR_BIN); the binary is target/release/weir.
#   2. Starts ONE dnsmasq (or, with DNS_SERVER=unbound, one unbound with
#      one thread) on a free 127.0.0.1 port answering `who.weir.test` (a
#      local answer: no upstream resolver, no cache misses).
#   3. For every proxy thread count in THREADS, starts one NGINX
#      (`worker_processes N`, `listen ... udp reuseport`, `proxy_responses 1`)
#      and one weir (`runtime.worker_threads = N`, `sockets = N`, UDP listener
#      with `responses = 1`, one backend, no health check), each on free
#      127.0.0.1 ports.
#   4. Runs dnsperf (no -Q rate cap, so it saturates) for every workload in
#      WORKLOADS against: direct (the backend alone), then every nginx and
#      weir, interleaved round by round, REPEATS times each, every run bounded
#      by `-l DURATION` and `timeout`.
#   5. Prints one markdown table: per workload and target, median queries/s,
#      lost queries (median and worst over the runs), the CPU the target
#      process used per completed query, the ratio to direct, and the ratio
#      weir/nginx at the same thread count (target: >= 1.5x with no more lost
#      queries), then one verdict line per workload and thread count.
#
# Everything it starts is stopped on exit (trap EXIT; each server runs in its
# own process group, killed as a group); it uses only 127.0.0.1.
# With the defaults (2 workloads x 5 targets x 3 runs of 5 s) it finishes in
# about 3.5 minutes after the build.
#
# Usage: benches/compare/udp_dns.sh
# Knobs (environment): REPEATS=3 DURATION=5 THREADS="1 2"
#   WORKLOADS="20:100 100:100" DNSPERF_THREADS=1 SKIP_BUILD=0 WEIR_BIN=
#   DNS_SERVER=dnsmasq (or unbound) RESULTS_OUT= (append the raw result
#   lines "workload target qps lost completed cpu-ticks other-% kernel-ticks" to this
#   file: run.sh's combined table)
#   IDLE_WAIT=0 MAX_OTHER=100 RETRIES=0 (see below; e.g. IDLE_WAIT=60
#   MAX_OTHER=10 RETRIES=3 on a busy shared machine, at the cost of time)
# Needs: dnsmasq (dnsmasq-base) or unbound, dnsperf, dig (bind9-dnsutils),
#   nginx with libnginx-mod-stream, ss (iproute2).

set -euo pipefail
# die, need, spawn, free_port, cleanup on exit, CPU accounting, median, col.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPEATS=${REPEATS:-3}
DURATION=${DURATION:-5}
THREADS=${THREADS:-"1 2"}
# Workloads, as dnsperf clients:outstanding. Each client is one source port.
# 20:100: five queries in flight per port, so a client port's flow carries
# many queries. 100:100: one in flight per port, so nearly every query is a
# flow of its own (open, one reply, close), as with stub resolvers that pick
# a fresh port per query. 100 in flight stays below what the backend's
# default receive buffer holds, so the backend itself drops nothing.
WORKLOADS=${WORKLOADS:-"20:100 100:100"}
DNSPERF_THREADS=${DNSPERF_THREADS:-1}
# For a machine shared with other work (builds, noisy neighbours): wait up to
# IDLE_WAIT seconds for an idle moment before each run, and run again (up to
# RETRIES times) a run during which other work took more than MAX_OTHER % of
# the CPU. Off by default, which keeps the run time fixed.
IDLE_WAIT=${IDLE_WAIT:-0}
MAX_OTHER=${MAX_OTHER:-100}
RETRIES=${RETRIES:-0}
DNS_SERVER=${DNS_SERVER:-dnsmasq}
RESULTS_OUT=${RESULTS_OUT:-}

NAME=who.weir.test
ANSWER=10.53.0.1
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so


need dnsperf dnsperf
need dig bind9-dnsutils
need ss iproute2
need timeout coreutils
DNSMASQ=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)
UNBOUND=$(command -v unbound || echo /usr/sbin/unbound)
case $DNS_SERVER in
dnsmasq) need "$DNSMASQ" dnsmasq-base ;;
unbound) need "$UNBOUND" unbound ;;
*) die "DNS_SERVER must be dnsmasq or unbound" ;;
esac
need "$NGINX" nginx
[[ -f "$STREAM_MODULE" ]] || die "missing $STREAM_MODULE (install: libnginx-mod-stream)"

# Sets $free to a loopback port free for both TCP and UDP (dnsmasq listens
# on both) and not handed out before.

# Waits until `dig` gets the answer through 127.0.0.1:$1 (the name $2 for logs).
await_answer() {
    local port=$1 what=$2 log=$3 i
    for ((i = 0; i < 100; i++)); do
        if [[ $(dig +short +time=1 +tries=1 -p "$port" @127.0.0.1 "$NAME" 2> /dev/null) == "$ANSWER" ]]; then
            return 0
        fi
        sleep 0.1
    done
    echo "--- $log" >&2
    tail -n 20 "$log" >&2 || true
    die "$what on port $port does not answer"
}

build_weir

queries="$work/queries.txt"
echo "$NAME A" > "$queries"

# The one DNS backend.
free_port
backend_port=$free
if [[ $DNS_SERVER == unbound ]]; then
    # One thread, one local answer, no logging, no remote control.
    cat > "$work/unbound.conf" << EOF
server:
    interface: 127.0.0.1
    port: $backend_port
    do-ip6: no
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "$work"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: 1
    access-control: 127.0.0.0/8 allow
    local-zone: "weir.test." static
    local-data: "$NAME. 60 IN A $ANSWER"
remote-control:
    control-enable: no
EOF
    spawn "$work/$DNS_SERVER.log" "$UNBOUND" -d -c "$work/unbound.conf"
else
    spawn "$work/$DNS_SERVER.log" "$DNSMASQ" --keep-in-foreground --conf-file=/dev/null \
        --no-resolv --no-hosts --bind-interfaces --listen-address=127.0.0.1 \
        --user=root --pid-file= --log-facility=- \
        --port="$backend_port" --address="/$NAME/$ANSWER"
fi
declare -A port pgid
port[direct]=$backend_port
pgid[direct]=$last_pid
await_answer "$backend_port" "$DNS_SERVER" "$work/$DNS_SERVER.log"

targets=(direct)
for t in $THREADS; do
    # NGINX stream, t workers.
    free_port
    p=$free
    dir="$work/nginx-$t"
    mkdir -p "$dir"
    cat > "$dir/nginx.conf" << EOF
load_module $STREAM_MODULE;
daemon off;
worker_processes $t;
error_log $dir/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 8192; }
stream {
    access_log off;
    server {
        listen 127.0.0.1:$p udp reuseport;
        proxy_pass 127.0.0.1:$backend_port;
        proxy_responses 1;
        proxy_timeout 10s;
    }
}
EOF
    spawn "$dir/stdout.log" "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
    port[nginx-$t]=$p
    pgid[nginx-$t]=$last_pid
    await_answer "$p" "nginx ($t workers)" "$dir/error.log"

    # weir, t worker threads and t listener sockets (as NGINX's reuseport
    # gives one socket per worker).
    free_port
    p=$free
    free_port
    admin=$free
    dir="$work/weir-$t"
    mkdir -p "$dir"
    cat > "$dir/weir.toml" << EOF
[admin]
address = "127.0.0.1:$admin"

[runtime]
worker_threads = $t

[[listeners]]
name = "dns"
bind = "127.0.0.1:$p"
protocol = "udp"
pool = "dns"
responses = 1
idle_timeout = "10s"
sockets = $t

[[pools]]
name = "dns"

[[pools.backends]]
name = "dnsmasq"
address = "127.0.0.1:$backend_port"
EOF
    spawn "$dir/weir.log" "$weir_bin" run -c "$dir/weir.toml"
    port[weir-$t]=$p
    pgid[weir-$t]=$last_pid
    await_answer "$p" "weir ($t threads)" "$dir/weir.log"
    targets+=("nginx-$t" "weir-$t")
done

# One dnsperf run: workload $1 (clients:outstanding), target $2; appends
# "workload target qps lost completed cpu-ticks other-cpu-% kernel-ticks" to the results.
hz=$(getconf CLK_TCK)
results="$work/results.txt"
: > "$results"
run_one() {
    local workload=$1 target=$2 clients=${1%%:*} outstanding=${1#*:}
    local out="$work/dnsperf.out" before after k0 k1 qps lost completed
    local m0 m1 c0 c1 b0 b1 own other
    before=$(cpu_ticks "${pgid[$target]}")
    k0=$(kernel_ticks "${pgid[$target]}")
    b0=$(cpu_ticks "${pgid[direct]}")
    count_children
    c0=$child_ticks
    m0=$(machine_ticks)
    timeout $((DURATION + 30)) dnsperf -s 127.0.0.1 -p "${port[$target]}" -d "$queries" \
        -l "$DURATION" -c "$clients" -q "$outstanding" -T "$DNSPERF_THREADS" -t 2 \
        > "$out" 2>&1 || {
        cat "$out" >&2
        die "dnsperf against $target failed"
    }
    m1=$(machine_ticks)
    count_children
    c1=$child_ticks
    b1=$(cpu_ticks "${pgid[direct]}")
    after=$(cpu_ticks "${pgid[$target]}")
    k1=$(kernel_ticks "${pgid[$target]}")
    # Busy time of everything else on the machine (other builds, say), as a
    # share of all CPU time during the run: how disturbed the run was.
    own=$((after - before + c1 - c0))
    [[ $target != direct ]] && own=$((own + b1 - b0))
    other=$(awk -v m0="$m0" -v m1="$m1" -v own="$own" 'BEGIN {
        split(m0, a, " "); split(m1, b, " ")
        busy = b[1] - a[1]; total = b[2] - a[2]
        o = (busy - own) * 100 / (total > 0 ? total : 1)
        printf "%.0f", (o < 0 ? 0 : o)
    }')
    qps=$(awk '/Queries per second:/ {print $4}' "$out")
    lost=$(awk '/Queries lost:/ {print $3}' "$out")
    completed=$(awk '/Queries completed:/ {print $3}' "$out")
    [[ -n $qps && -n $lost && -n $completed ]] || {
        cat "$out" >&2
        die "cannot parse dnsperf output against $target"
    }
    echo "$workload $target $qps $lost $completed $((after - before)) $other $((k1 - k0))" >> "$results"
    printf '  c%-4s q%-4s %-9s %10.0f q/s  lost %s  other CPU %s%%\n' \
        "$clients" "$outstanding" "$target" "$qps" "$lost" "$other" >&2
}

# Warm-up (not counted): one short run per target.
echo "warming up..." >&2
for target in "${targets[@]}"; do
    timeout 30 dnsperf -s 127.0.0.1 -p "${port[$target]}" -d "$queries" -l 1 \
        -c 20 -q 100 -T "$DNSPERF_THREADS" -t 2 > /dev/null 2>&1 || true
done

# Waits up to IDLE_WAIT seconds for a second in which the machine is at most
# 10% busy (nothing of ours runs between runs, so that is other work).
wait_idle() {
    local i m0 m1 busy
    for ((i = 0; i < IDLE_WAIT; i++)); do
        m0=$(machine_ticks)
        sleep 1
        m1=$(machine_ticks)
        busy=$(awk -v m0="$m0" -v m1="$m1" 'BEGIN {
            split(m0, a, " "); split(m1, b, " ")
            printf "%d", (b[1] - a[1]) * 100 / (b[2] - a[2] > 0 ? b[2] - a[2] : 1)
        }')
        ((busy <= 10)) && return 0
    done
    return 0
}

# Round-robin, so that a noisy moment hits every target alike. A run that
# other work disturbed (other CPU above MAX_OTHER) is run again, up to
# RETRIES times; the last attempt counts whatever it shows.
for ((r = 1; r <= REPEATS; r++)); do
    echo "round $r/$REPEATS" >&2
    for workload in $WORKLOADS; do
        for target in "${targets[@]}"; do
            for ((attempt = 0; ; attempt++)); do
                wait_idle
                run_one "$workload" "$target"
                other=$(tail -n 1 "$results" | awk '{print $7}')
                ((other <= MAX_OTHER || attempt >= RETRIES)) && break
                sed -i '$d' "$results"
                echo "  (disturbed: again)" >&2
            done
        done
    done
done

if [[ -n $RESULTS_OUT ]]; then cat "$results" >> "$RESULTS_OUT"; fi

# The table. Medians of REPEATS runs; CPU per query is the target process's
# (dnsmasq for direct, the proxy alone otherwise) CPU time over its completed
# queries.

declare -A med_qps max_lost
echo
echo "| workload | target | threads | median qps | lost (median / max) | CPU µs/query | other CPU | ratio to direct | weir / nginx |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
for workload in $WORKLOADS; do
    label="c${workload%%:*} q${workload#*:}"
    for target in "${targets[@]}"; do
        med_qps[$workload/$target]=$(col "$workload" "$target" 3 | median)
        max_lost[$workload/$target]=$(col "$workload" "$target" 4 | sort -g | tail -n 1)
    done
    for target in "${targets[@]}"; do
        name=${target%%-*}
        threads=${target#*-}
        [[ $target == direct ]] && threads="-" && name="direct ($DNS_SERVER)"
        lost_med=$(col "$workload" "$target" 4 | median)
        cpu_us=$(awk -v w="$workload" -v t="$target" -v hz="$hz" \
            '$1 == w && $2 == t {print ($6 / hz) * 1e6 / ($5 > 0 ? $5 : 1)}' "$results" | median)
        other=$(col "$workload" "$target" 7 | median)
        qps=${med_qps[$workload/$target]}
        ratio_direct=$(awk -v a="$qps" -v b="${med_qps[$workload/direct]}" 'BEGIN {printf "%.2f", a / b}')
        vs="-"
        if [[ $target == weir-* ]]; then
            vs=$(awk -v a="$qps" -v b="${med_qps[$workload/nginx-$threads]}" 'BEGIN {printf "**%.2f×**", a / b}')
        fi
        printf '| %s | %s | %s | %.0f | %s / %s | %.1f | %s%% | %s | %s |\n' \
            "$label" "$name" "$threads" "$qps" "$lost_med" "${max_lost[$workload/$target]}" \
            "$cpu_us" "$other" "$ratio_direct" "$vs"
    done
done
echo
# "No more lost" compares the worst run of each: weir's must not exceed
# NGINX's, nor the backend's alone (whatever the backend drops by itself is
# not the proxy's doing).
for workload in $WORKLOADS; do
    for t in $THREADS; do
        awk -v label="c${workload%%:*} q${workload#*:}" -v t="$t" \
            -v w="${med_qps[$workload/weir-$t]}" -v n="${med_qps[$workload/nginx-$t]}" \
            -v wl="${max_lost[$workload/weir-$t]}" -v nl="${max_lost[$workload/nginx-$t]}" \
            -v dl="${max_lost[$workload/direct]}" 'BEGIN {
            r = w / n
            floor = (nl > dl ? nl : dl)
            printf "%s, %s thread(s): weir/nginx = %.2f× (target 1.5×: %s); lost, worst run: weir %d, nginx %d, direct %d (%s)\n",
                label, t, r, (r >= 1.5 ? "met" : "NOT met"), wl, nl, dl, (wl <= floor ? "no more lost" : "MORE lost")
        }'
    done
done
echo "dnsperf -l ${DURATION} -t 2 -T ${DNSPERF_THREADS}, one query name; medians of $REPEATS runs; $(nproc) CPUs shared by dnsperf, dnsmasq and the proxy"
echo "CPU µs/query: the target process's CPU time (dnsmasq for direct, else the proxy alone) per completed query."
echo "other CPU: share of the machine's CPU time used by processes outside the benchmark during the runs (median); above a few % the qps figures are disturbed."
