#!/usr/bin/env bash
# L4 (TCP) benchmark: weir's TCP listener against HAProxy (`mode tcp`, splice
# forced on) and NGINX `stream`, each with 1 and then 2 worker threads/
# processes, all in front of the same backend, on the same machine, in the
# same run (issue 7). A benchmark, not a test: it prints a table and never
# fails on the numbers. run.sh calls it (with RESULTS_OUT) for the combined
# table; it also runs alone.
#
# Workloads (WORKLOADS, in this order; each starts its own backend and the
# proxies in front of it, and stops them when done):
#   bulk1, bulk4  iperf3 -t DURATION -P 1 / -P 4 (one iperf3 -s backend);
#                 Gbit/s received, CPU per MB.
#   churn         wrk -t1 -c64 -H 'Connection: close' to an NGINX HTTP
#                 backend (fixed 22-byte 200): a new TCP connection per
#                 request; connections/s, p99, CPU per connection.
#   redis         redis-benchmark -c 50 -t ping_mbulk / set / get, each with
#                 -P 1 and -P 16 (six workloads: redis-ping-P1 ...), against
#                 one redis-server (no persistence); requests/s, p99.
#   pgbench       pgbench -n -S -c 8 -j 2 -T DURATION against a PostgreSQL
#                 cluster initdb'd in the temp dir (scale 1, fsync off), run
#                 as the postgres user; transactions/s, p99 from -l logs.
#   idle          memory per held idle connection: a fresh proxy, a warm-up
#                 of 100 connections, then IDLE_CONNS connections opened
#                 through it to a sink that holds them (hold.py), nothing
#                 sent; proxy RSS growth (VmRSS of its process group) per
#                 connection once all are established on the backend side
#                 and 1 s idle. Fresh proxies every repeat (allocators keep
#                 what they once held).
# Targets: direct (client to the backend, no proxy; not for idle), then for
# each N in THREADS: haproxy-N (`nbthread N`, `mode tcp`, `option
# splice-request`, `option splice-response`, no log), nginx-N
# (`worker_processes N`, `stream` `proxy_pass`, `access_log off`), weir-N
# (`[runtime] worker_threads = N`, a TCP listener, splice on (the default)).
# Runs are interleaved round by round (REPEATS rounds) so that a noisy moment
# hits every target alike. Every client run is bounded by `timeout`.
#
# Usage: benches/compare/l4.sh
# Knobs (environment): REPEATS=3 DURATION=3 THREADS="1 2"
#   WORKLOADS="bulk1 bulk4 churn redis pgbench idle" IDLE_CONNS=4000
#   REDIS_N_P1=30000 REDIS_N_P16=200000 (requests per redis-benchmark run at
#   DURATION=3, scaled with DURATION) SKIP_BUILD=0 WEIR_BIN= RESULTS_OUT=
#   (append the raw result lines "workload target value p99-ms errors units
#   cpu-ticks other-% kernel-ticks" to this file)
# Needs: haproxy, nginx + libnginx-mod-stream, iperf3, wrk, redis-server +
#   redis-tools, postgresql, python3, ss (iproute2).

set -euo pipefail
# die, need, spawn, free_port, cleanup on exit, CPU and RSS accounting.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPEATS=${REPEATS:-3}
DURATION=${DURATION:-3}
THREADS=${THREADS:-"1 2"}
WORKLOADS=${WORKLOADS:-"bulk1 bulk4 churn redis pgbench idle"}
IDLE_CONNS=${IDLE_CONNS:-4000}
REDIS_N_P1=${REDIS_N_P1:-30000}
REDIS_N_P16=${REDIS_N_P16:-200000}
RESULTS_OUT=${RESULTS_OUT:-}

BODY="hello from the backend"
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1)

need ss iproute2
need timeout coreutils
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
need "$NGINX" nginx
need "$HAPROXY" haproxy
[[ -f "$STREAM_MODULE" ]] || die "missing $STREAM_MODULE (install: libnginx-mod-stream)"
for w in $WORKLOADS; do
    case $w in
    bulk*) need iperf3 iperf3 ;;
    churn) need wrk wrk ;;
    redis) need redis-server redis-server && need redis-benchmark redis-tools ;;
    pgbench) [[ -n $PGBIN ]] || die "missing PostgreSQL (install: postgresql)"
        need "$PGBIN/pgbench" postgresql ;;
    idle) need "$PY" python3 ;;
    *) die "unknown workload $w (bulk1 bulk4 churn redis pgbench idle)" ;;
    esac
done

build_weir

hz=$(getconf CLK_TCK)
results="$work/results.txt"
: > "$results"
declare -A port pgid

# Waits until something listens on TCP 127.0.0.1:$1 ($2 names it, $3 its log).
await_listen() {
    local p=$1 what=$2 log=$3 i
    for ((i = 0; i < 100; i++)); do
        ss -Hltn "( sport = :$p )" | grep -q . && return 0
        sleep 0.1
    done
    echo "--- $log" >&2
    tail -n 20 "$log" >&2 || true
    die "$what does not listen on port $p"
}

# Stops the servers of process group $1 and forgets it.
stop_server() {
    local g=$1 kept=() x
    stop_group "$g"
    for x in "${server_groups[@]}"; do
        if [[ $x != "$g" ]]; then kept+=("$x"); fi
    done
    server_groups=("${kept[@]}")
}

# Starts proxy $1 (haproxy, nginx, weir) with $2 threads in front of
# 127.0.0.1:$3 for workload group $4; sets port[$1-$2] and pgid[$1-$2].
start_proxy() {
    local kind=$1 t=$2 bport=$3 group=$4 p admin dir
    free_port
    p=$free
    dir="$work/$group-$kind-$t"
    mkdir -p "$dir"
    case $kind in
    haproxy)
        cat > "$dir/haproxy.cfg" << EOF
global
    nbthread $t
    maxconn 7000

defaults
    mode tcp
    option splice-request
    option splice-response
    timeout connect 5s
    timeout client 300s
    timeout server 300s

frontend fe
    bind 127.0.0.1:$p
    default_backend be

backend be
    server s1 127.0.0.1:$bport
EOF
        spawn "$dir/haproxy.log" "$HAPROXY" -db -f "$dir/haproxy.cfg"
        await_listen "$p" "haproxy ($t threads)" "$dir/haproxy.log"
        ;;
    nginx)
        cat > "$dir/nginx.conf" << EOF
load_module $STREAM_MODULE;
$(nginx_main "$dir" "$t")
worker_rlimit_nofile 19000;
events { worker_connections 16384; }
stream {
    access_log off;
    server {
        listen 127.0.0.1:$p;
        proxy_pass 127.0.0.1:$bport;
        proxy_timeout 300s;
    }
}
EOF
        spawn "$dir/stdout.log" "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
        await_listen "$p" "nginx ($t workers)" "$dir/error.log"
        ;;
    weir)
        free_port
        admin=$free
        cat > "$dir/weir.toml" << EOF
[admin]
address = "127.0.0.1:$admin"

[runtime]
worker_threads = $t

[[listeners]]
name = "tcp"
bind = "127.0.0.1:$p"
pool = "backend"
splice = true

[[pools]]
name = "backend"

[[pools.backends]]
name = "b1"
address = "127.0.0.1:$bport"
EOF
        spawn "$dir/weir.log" "$weir_bin" run -c "$dir/weir.toml"
        await_listen "$p" "weir ($t threads)" "$dir/weir.log"
        ;;
    esac
    port[$kind-$t]=$p
    pgid[$kind-$t]=$last_pid
}

# Starts every proxy in front of 127.0.0.1:$1 (group $2); sets $targets.
start_proxies() {
    local t kind
    targets=(direct)
    for t in $THREADS; do
        for kind in haproxy nginx weir; do
            start_proxy "$kind" "$t" "$1" "$2"
            targets+=("$kind-$t")
        done
    done
}

stop_proxies() {
    local t kind
    for t in $THREADS; do
        for kind in haproxy nginx weir; do
            if [[ -n ${pgid[$kind-$t]:-} ]]; then stop_server "${pgid[$kind-$t]}"; fi
            unset "pgid[$kind-$t]"
        done
    done
}

# Latency "1.23ms" (wrk's units: us, ms, s) in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    }'
}

# Records one result line (workload target value p99 errors units ticks other).
record() {
    echo "$*" >> "$results"
    printf '  %-14s %-10s %12s  p99 %-8s errors %-4s other CPU %s%%\n' \
        "$1" "$2" "$3" "$4" "$5" "$8" >&2
}

# One load run of workload $1 against target $2 (backend group: pgid[direct]).
run_one() {
    local w=$1 target=$2 p=${port[$2]} out="$work/load.out"
    local value p99 errors units attempt
    measure_begin "${pgid[$target]}" "${pgid[direct]}"
    case $w in
    bulk1 | bulk4)
        for ((attempt = 0; attempt < 5; attempt++)); do
            if timeout $((DURATION + 20)) iperf3 -c 127.0.0.1 -p "$p" -t "$DURATION" \
                -P "${w#bulk}" -J > "$out" 2>&1; then
                break
            fi
            # The server may still be closing the previous test: again.
            grep -q busy "$out" || { cat "$out" >&2; die "iperf3 against $target failed"; }
            sleep 1
            measure_begin "${pgid[$target]}" "${pgid[direct]}"
        done
        read -r value units < <("$PY" -c '
import json, sys
e = json.load(open(sys.argv[1]))["end"]["sum_received"]
print("%.3f %.1f" % (e["bits_per_second"] / 1e9, e["bytes"] / 1e6))' "$out") ||
            { cat "$out" >&2; die "cannot parse iperf3 output against $target"; }
        p99=- errors=0
        ;;
    churn)
        timeout $((DURATION + 30)) wrk -t1 -c64 -d"${DURATION}s" --latency \
            -H 'Connection: close' "http://127.0.0.1:$p/" > "$out" 2>&1 ||
            { cat "$out" >&2; die "wrk against $target failed"; }
        value=$(awk '/^Requests\/sec:/ {print $2}' "$out")
        units=$(awk '/requests in/ {print $1}' "$out")
        p99=$(awk '$1 == "99%" {print $2}' "$out")
        [[ -n $p99 ]] && p99=$(to_ms "$p99")
        errors=$(awk '/Non-2xx or 3xx responses:/ {e += $NF}
            /Socket errors:/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10}
            END {print e + 0}' "$out")
        ;;
    redis-*)
        local test=${w#redis-} pipe n
        pipe=${test#*-P}
        test=${test%-P*}
        [[ $test == ping ]] && test=ping_mbulk
        n=$(((pipe == 1 ? REDIS_N_P1 : REDIS_N_P16) * DURATION / 3))
        timeout $((DURATION * 10 + 30)) redis-benchmark -h 127.0.0.1 -p "$p" -c 50 \
            -n "$n" -P "$pipe" -t "$test" --csv > "$out" 2>&1 ||
            { cat "$out" >&2; die "redis-benchmark against $target failed"; }
        # "test","rps","avg","min","p50","p95","p99","max" (ms)
        read -r value p99 < <(awk -F'"' 'NR > 1 && $2 != "" {print $4, $14; exit}' "$out")
        units=$n errors=0
        ;;
    pgbench)
        rm -f "$work"/pgb.*
        timeout $((DURATION + 30)) "$PGBIN/pgbench" -n -S -c 8 -j 2 -T "$DURATION" \
            -h 127.0.0.1 -p "$p" -U postgres -l --log-prefix="$work/pgb" bench > "$out" 2>&1 ||
            { cat "$out" >&2; die "pgbench against $target failed"; }
        value=$(awk '/^tps = / {print $3; exit}' "$out")
        units=$(awk '/number of transactions actually processed:/ {split($NF, a, "/"); print a[1]}' "$out")
        errors=$(awk '/number of failed transactions:/ {print $5}' "$out")
        # Per-transaction log: client, txn, latency (µs), ...
        p99=$(cat "$work"/pgb.* | awk '{print $3}' | sort -n | awk '{v[NR] = $1}
            END {if (NR) {i = int(NR * 0.99); if (i < 1) i = 1; printf "%.3f", v[i] / 1000}}')
        ;;
    esac
    measure_end "${pgid[$target]}" "${pgid[direct]}"
    [[ -n $value && -n $units ]] || { cat "$out" >&2; die "cannot parse $w output against $target"; }
    record "$w" "$target" "$value" "${p99:--}" "${errors:-0}" "$units" "$run_ticks" "$run_other" "$run_kernel"
}

# Rounds of every workload in $@ against every target.
rounds() {
    local r w target
    for ((r = 1; r <= REPEATS; r++)); do
        echo "round $r/$REPEATS (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
        for w in "$@"; do
            for target in "${targets[@]}"; do
                run_one "$w" "$target"
            done
        done
    done
}

# Established TCP connections whose local port is $1.
established() { ss -Htn state established "( sport = :$1 )" | wc -l; }

# Holds $2 idle connections through 127.0.0.1:$1 to the sink on port $3;
# leaves the holder running (pid $holder, its stdin on fd 7) once all are
# established on the sink's side; dies after 30 s.
hold_open() {
    local p=$1 n=$2 sink=$3 i
    rm -f "$work/hold.in"
    mkfifo "$work/hold.in"
    "$PY" "$here/hold.py" hold "$p" "$n" 120 < "$work/hold.in" > "$work/hold.out" 2>&1 &
    holder=$!
    exec 7> "$work/hold.in"
    for ((i = 0; i < 300; i++)); do
        if grep -q '^ready' "$work/hold.out" && (($(established "$sink") >= n)); then
            return 0
        fi
        kill -0 "$holder" 2> /dev/null || { cat "$work/hold.out" >&2; die "holder died"; }
        sleep 0.1
    done
    cat "$work/hold.out" >&2
    die "$n connections through port $p not established within 30 s ($(established "$sink") at the sink)"
}
hold_close() {
    local sink=$1 i
    exec 7>&-
    wait "$holder" 2> /dev/null || true
    for ((i = 0; i < 100; i++)); do
        (($(established "$sink") == 0)) && return 0
        sleep 0.1
    done
}

run_idle() {
    local r t kind target sink before after
    free_port
    sink=$free
    spawn "$work/sink.log" "$PY" "$here/hold.py" sink "$sink"
    pgid[direct]=$last_pid
    await_listen "$sink" "idle sink" "$work/sink.log"
    for ((r = 1; r <= REPEATS; r++)); do
        echo "idle round $r/$REPEATS: $IDLE_CONNS connections (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
        for t in $THREADS; do
            for kind in haproxy nginx weir; do
                target=$kind-$t
                start_proxy "$kind" "$t" "$sink" idle
                hold_open "${port[$target]}" 100 "$sink"
                hold_close "$sink"
                sleep 0.5
                before=$(group_rss "${pgid[$target]}")
                hold_open "${port[$target]}" "$IDLE_CONNS" "$sink"
                sleep 1
                after=$(group_rss "${pgid[$target]}")
                hold_close "$sink"
                stop_server "${pgid[$target]}"
                record idle "$target" "$(((after - before) / IDLE_CONNS))" - 0 "$IDLE_CONNS" 0 0 0
            done
        done
    done
    stop_server "${pgid[direct]}"
}

# The NGINX HTTP backend of the churn workload (fixed 22-byte 200).
start_http_backend() {
    local dir="$work/churn-backend"
    free_port
    backend_port=$free
    mkdir -p "$dir"
    write_nginx_backend_conf "$dir" "$backend_port"
    spawn "$dir/stdout.log" "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
    pgid[direct]=$last_pid
    await_listen "$backend_port" "backend nginx" "$dir/error.log"
}

start_postgres() {
    local dir="$work/pg" i
    free_port
    backend_port=$free
    mkdir -p "$dir"
    chmod 711 "$work"
    chown postgres: "$dir" 2> /dev/null || true
    local as=()
    [[ $(id -u) == 0 ]] && as=(runuser -u postgres --)
    "${as[@]}" "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync > "$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    spawn "$dir/postgres.log" "${as[@]}" "$PGBIN/postgres" -D "$dir/data" -p "$backend_port" \
        -k "$dir" -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
        -c full_page_writes=off -c max_connections=100 -c shared_buffers=128MB
    pgid[direct]=$last_pid
    for ((i = 0; i < 100; i++)); do
        "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$backend_port" && break
        sleep 0.2
    done
    "$PGBIN/createdb" -h 127.0.0.1 -p "$backend_port" -U postgres bench
    "$PGBIN/pgbench" -i -q -s 1 -h 127.0.0.1 -p "$backend_port" -U postgres bench > "$dir/init.log" 2>&1 ||
        { cat "$dir/init.log" >&2; die "pgbench -i failed"; }
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)" >&2
done_bulk=0
for w in $WORKLOADS; do
    case $w in
    bulk1 | bulk4)
        ((done_bulk)) && continue
        done_bulk=1
        free_port
        backend_port=$free
        spawn "$work/iperf3.log" iperf3 -s -B 127.0.0.1 -p "$backend_port"
        pgid[direct]=$last_pid
        await_listen "$backend_port" "iperf3 -s" "$work/iperf3.log"
        port[direct]=$backend_port
        start_proxies "$backend_port" bulk
        bulks=()
        for x in $WORKLOADS; do
            if [[ $x == bulk1 || $x == bulk4 ]]; then bulks+=("$x"); fi
        done
        rounds "${bulks[@]}"
        ;;
    churn)
        start_http_backend
        port[direct]=$backend_port
        start_proxies "$backend_port" churn
        for target in "${targets[@]}"; do # warm-up, not counted
            timeout 20 wrk -t1 -c64 -d1s -H 'Connection: close' "http://127.0.0.1:${port[$target]}/" > /dev/null 2>&1 || true
        done
        rounds churn
        ;;
    redis)
        free_port
        backend_port=$free
        spawn "$work/redis.log" redis-server --bind 127.0.0.1 --port "$backend_port" \
            --save '' --appendonly no --protected-mode no --daemonize no --dir "$work" \
            --maxclients 4000
        pgid[direct]=$last_pid
        await_listen "$backend_port" "redis-server" "$work/redis.log"
        port[direct]=$backend_port
        start_proxies "$backend_port" redis
        rounds redis-ping-P1 redis-set-P1 redis-get-P1 redis-ping-P16 redis-set-P16 redis-get-P16
        ;;
    pgbench)
        start_postgres
        port[direct]=$backend_port
        start_proxies "$backend_port" pgbench
        rounds pgbench
        ;;
    idle)
        run_idle
        continue
        ;;
    esac
    stop_proxies
    stop_server "${pgid[direct]}"
done

if [[ -n $RESULTS_OUT ]]; then cat "$results" >> "$RESULTS_OUT"; fi

# A plain summary: medians per workload and target.
echo
echo "| workload | target | median | median p99 (ms) | errors | runs |"
echo "|---|---|---:|---:|---:|---:|"
awk '{k = $1 " " $2; if (!(k in n)) order[++m] = k; n[k]++; v[k, n[k]] = $3; p[k, n[k]] = $4; e[k] += $5}
    function med(a, k, c,   i, j, t, x) {
        for (i = 1; i <= c; i++) x[i] = a[k, i]
        for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (x[j] + 0 < x[i] + 0) { t = x[i]; x[i] = x[j]; x[j] = t }
        return (c % 2) ? x[(c + 1) / 2] : (x[c / 2] + x[c / 2 + 1]) / 2
    }
    END {for (i = 1; i <= m; i++) {k = order[i]; split(k, s, " ")
        printf "| %s | %s | %s | %s | %d | %d |\n", s[1], s[2], med(v, k, n[k]), (p[k, 1] == "-" ? "-" : med(p, k, n[k])), e[k], n[k]}}' "$results"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
