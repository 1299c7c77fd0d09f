#!/usr/bin/env bash
# HTTP benchmark: requests/s and p99 latency through weir's L7 gateway against
# HAProxy and NGINX in HTTP mode, all three in front of the same backend, on
# the same machine, in the same run (issue 4). A benchmark, not a test: it
# prints a table and never fails on the numbers.
#
# What it does:
#   1. `cargo build --release --locked` (skip with SKIP_BUILD=1, or give a
#      binary with WEIR_BIN); the binary is target/release/weir.
#   2. Starts ONE backend, shared by every proxy: NGINX (`worker_processes 1`,
#      keep-alive, no access log) answering every GET with a fixed 200 of
#      22 bytes, on a free 127.0.0.1 port for HTTP/1.1 and a second one for
#      cleartext HTTP/2 (prior knowledge), the latter only for the "direct"
#      HTTP/2 runs: the proxies all speak HTTP/1.1 to the backend.
#   3. For every proxy thread count in THREADS, starts
#      - HAProxy: `mode http`, `nbthread N`, `option http-keep-alive`,
#        `http-reuse always`, no logging; one `bind` for HTTP/1.1 and one
#        `bind ... proto h2` (h2c, prior knowledge);
#      - NGINX as a proxy: `worker_processes N`, an `upstream` with
#        `keepalive 64`, `proxy_http_version 1.1`, `proxy_set_header
#        Connection ""`, `access_log off`; one `listen` for HTTP/1.1 and one
#        `listen ... http2` (nginx 1.22: h2c with prior knowledge);
#      - weir: `[runtime] worker_threads = N`, one `protocol = "http"`
#        listener (HTTP/1.1 and h2c on one port), `access_log = "off"`, one
#        route `path_prefix = "/"` to a one-backend pool, no health check;
#      - the hyper floor (FLOOR=1, the default): `bare_hyper_proxy`, the
#        leanest reverse proxy hyper allows (l7/examples/bare_hyper_proxy.rs:
#        weir's building blocks, none of its work), N threads; the CPU a
#        proxy on hyper cannot go below;
#      each on free 127.0.0.1 ports.
#   4. Runs every workload against: direct (the backend alone), then every
#      haproxy, nginx, weir (and floor), interleaved round by round so that a noisy
#      moment hits every target alike, REPEATS times each:
#      - h1: `wrk -t1 -c64 -dDURATION --latency` (HTTP/1.1 keep-alive), p99
#        from wrk's latency distribution;
#      - h2: `h2load -t1 -c16 -m10 -DDURATION` (HTTP/2, 160 streams in
#        flight), p99 computed from h2load's per-request `--log-file` (h2load
#        1.52 prints only min/max/mean/sd itself).
#   5. Prints one markdown table: per workload and target, median requests/s,
#      median p99, errors (non-2xx, socket errors, failed streams; summed over
#      the runs), the CPU the target used per request, how busy the rest of
#      the machine was, the ratio to direct and the ratio to the better (by
#      requests/s) of haproxy and nginx at the same thread count; then one
#      verdict line per workload and thread count against issue 4's target:
#      weir >= 1.0x the better of the two in requests/s with p99 no worse.
#
# Everything it starts is stopped on exit (trap EXIT; each server runs in its
# own process group, killed as a group); it uses only 127.0.0.1 (never port
# 80). With the defaults (2 workloads x 9 targets x 3 runs of 5 s) it finishes
# in about 5 minutes after the build.
#
# Usage: benches/compare/http.sh
# Knobs (environment): REPEATS=3 DURATION=5 THREADS="1 2" WORKLOADS="h1 h2"
#   SKIP_BUILD=0 WEIR_BIN= FLOOR=1 RESULTS_OUT= (append the raw result lines
#   "workload target req/s p99-ms errors requests cpu-ticks other-% kernel-ticks" to this
#   file: run.sh's combined table)
# Needs: haproxy, nginx, wrk, h2load (nghttp2-client), curl, ss (iproute2).

set -euo pipefail
# die, need, spawn, free_port, cleanup on exit, CPU accounting, median, col.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPEATS=${REPEATS:-3}
DURATION=${DURATION:-5}
THREADS=${THREADS:-"1 2"}
WORKLOADS=${WORKLOADS:-"h1 h2"}
FLOOR=${FLOOR:-1}
RESULTS_OUT=${RESULTS_OUT:-}

# The backend's fixed answer (22 bytes).
BODY="hello from the backend"


need wrk wrk
need h2load nghttp2-client
need curl curl
need ss iproute2
need timeout coreutils
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
need "$NGINX" nginx
need "$HAPROXY" haproxy

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"

build_weir
floor_bin="$root/target/release/examples/bare_hyper_proxy"
if [[ $FLOOR == 1 ]]; then
    if [[ $SKIP_BUILD != 1 ]]; then
        echo "building the hyper floor (release)..." >&2
        (cd "$root" && cargo build --release --locked -p weir-l7 --example bare_hyper_proxy)
    fi
    [[ -x $floor_bin ]] || die "no $floor_bin (build first, or FLOOR=0)"
fi

# The one backend: HTTP/1.1 on $backend_port, h2c on $backend_h2_port.
free_port
backend_port=$free
free_port
backend_h2_port=$free
dir="$work/backend"
mkdir -p "$dir"
write_nginx_backend_conf "$dir" "$backend_port" "$backend_h2_port"
spawn "$dir/stdout.log" "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
declare -A port h2port pgid
port[direct]=$backend_port
h2port[direct]=$backend_h2_port
pgid[direct]=$last_pid
await_http "$backend_port" "$backend_h2_port" "backend nginx" "$dir/error.log"

targets=(direct)
for t in $THREADS; do
    # HAProxy, t threads.
    free_port
    p=$free
    free_port
    p2=$free
    dir="$work/haproxy-$t"
    mkdir -p "$dir"
    cat > "$dir/haproxy.cfg" << EOF
global
    nbthread $t
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend h1
    bind 127.0.0.1:$p
    default_backend backend

frontend h2
    bind 127.0.0.1:$p2 proto h2
    default_backend backend

backend backend
    server nginx 127.0.0.1:$backend_port
EOF
    spawn "$dir/haproxy.log" "$HAPROXY" -db -f "$dir/haproxy.cfg"
    port[haproxy-$t]=$p
    h2port[haproxy-$t]=$p2
    pgid[haproxy-$t]=$last_pid
    await_http "$p" "$p2" "haproxy ($t threads)" "$dir/haproxy.log"

    # NGINX as a proxy, t workers.
    free_port
    p=$free
    free_port
    p2=$free
    dir="$work/nginx-$t"
    mkdir -p "$dir"
    cat > "$dir/nginx.conf" << EOF
$(nginx_main "$dir" "$t")
events { worker_connections 8192; }
http {
$(nginx_http_common "$dir")
    upstream backend {
        server 127.0.0.1:$backend_port;
        keepalive 64;
        keepalive_requests 100000000;
    }
    server {
        listen 127.0.0.1:$p;
        listen 127.0.0.1:$p2 http2;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
    spawn "$dir/stdout.log" "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
    port[nginx-$t]=$p
    h2port[nginx-$t]=$p2
    pgid[nginx-$t]=$last_pid
    await_http "$p" "$p2" "nginx ($t workers)" "$dir/error.log"

    # weir, t worker threads; HTTP/1.1 and h2c share the listener's port.
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
name = "web"
bind = "127.0.0.1:$p"
protocol = "http"
access_log = "off"

[[listeners.routes]]
name = "all"
path_prefix = "/"
pool = "web"

[[pools]]
name = "web"

[[pools.backends]]
name = "nginx"
address = "127.0.0.1:$backend_port"
EOF
    spawn "$dir/weir.log" "$weir_bin" run -c "$dir/weir.toml"
    port[weir-$t]=$p
    h2port[weir-$t]=$p
    pgid[weir-$t]=$last_pid
    await_http "$p" "$p" "weir ($t threads)" "$dir/weir.log"
    targets+=("haproxy-$t" "nginx-$t" "weir-$t")

    # The hyper floor, t threads; HTTP/1.1 and h2c on one port, like weir.
    if [[ $FLOOR == 1 ]]; then
        free_port
        p=$free
        dir="$work/floor-$t"
        mkdir -p "$dir"
        spawn "$dir/floor.log" "$floor_bin" "127.0.0.1:$p" "127.0.0.1:$backend_port" "$t"
        port[floor-$t]=$p
        h2port[floor-$t]=$p
        pgid[floor-$t]=$last_pid
        await_http "$p" "$p" "hyper floor ($t threads)" "$dir/floor.log"
        targets+=("floor-$t")
    fi
done

# Latency "1.23ms" (wrk's units: us, ms, s) in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    }'
}

# One load run: workload $1 (h1 or h2), target $2; appends
# "workload target req/s p99-ms errors requests cpu-ticks other-cpu-% kernel-ticks" to
# the results.
hz=$(getconf CLK_TCK)
results="$work/results.txt"
: > "$results"
run_one() {
    local workload=$1 target=$2
    local out="$work/load.out" log="$work/h2load.log" before after
    local rps p99 errors requests m0 m1 c0 c1 b0 b1 k0 k1 own other
    before=$(cpu_ticks "${pgid[$target]}")
    k0=$(kernel_ticks "${pgid[$target]}")
    b0=$(cpu_ticks "${pgid[direct]}")
    count_children
    c0=$child_ticks
    m0=$(machine_ticks)
    if [[ $workload == h1 ]]; then
        timeout $((DURATION + 30)) wrk -t1 -c64 -d"${DURATION}s" --latency \
            "http://127.0.0.1:${port[$target]}/" > "$out" 2>&1 || {
            cat "$out" >&2
            die "wrk against $target failed"
        }
    else
        timeout $((DURATION + 30)) h2load -t1 -c16 -m10 -D"$DURATION" \
            --log-file="$log" "http://127.0.0.1:${h2port[$target]}/" > "$out" 2>&1 || {
            cat "$out" >&2
            die "h2load against $target failed"
        }
    fi
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
    if [[ $workload == h1 ]]; then
        rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
        requests=$(awk '/requests in/ {print $1}' "$out")
        p99=$(awk '$1 == "99%" {print $2}' "$out")
        [[ -n $p99 ]] && p99=$(to_ms "$p99")
        # Non-2xx/3xx responses plus socket errors (connect, read, write, timeout).
        errors=$(awk '/Non-2xx or 3xx responses:/ {e += $NF}
            /Socket errors:/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10}
            END {print e + 0}' "$out")
    else
        rps=$(awk '/^finished in/ {gsub(/,/, ""); print $4}' "$out")
        # requests: T total, S started, D done, OK succeeded, F failed, E errored, TO timeout
        requests=$(awk '/^requests:/ {print $8}' "$out")
        errors=$(awk '/^requests:/ {f = $10 + $12 + $14} /^status codes:/ {n = $5 + $7 + $9}
            END {print f + n + 0}' "$out")
        # p99 of the per-request durations (third column, microseconds).
        p99=$(cut -f3 "$log" | sort -n | awk '{v[NR] = $1}
            END {if (NR) {i = int(NR * 0.99); if (i < 1) i = 1; printf "%.3f", v[i] / 1000}}')
        rm -f "$log"
    fi
    [[ -n $rps && -n $p99 && -n $requests ]] || {
        cat "$out" >&2
        die "cannot parse $workload output against $target"
    }
    echo "$workload $target $rps $p99 $errors $requests $((after - before)) $other $((k1 - k0))" >> "$results"
    printf '  %s %-10s %10.0f req/s  p99 %8.3f ms  errors %s  other CPU %s%%\n' \
        "$workload" "$target" "$rps" "$p99" "$errors" "$other" >&2
}

# Warm-up (not counted): one short run per target and workload.
echo "warming up..." >&2
for target in "${targets[@]}"; do
    timeout 30 wrk -t1 -c64 -d1s "http://127.0.0.1:${port[$target]}/" > /dev/null 2>&1 || true
    timeout 30 h2load -t1 -c16 -m10 -D1 "http://127.0.0.1:${h2port[$target]}/" > /dev/null 2>&1 || true
done

# Round-robin, so that a noisy moment hits every target alike.
for ((r = 1; r <= REPEATS; r++)); do
    echo "round $r/$REPEATS (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    for workload in $WORKLOADS; do
        for target in "${targets[@]}"; do
            run_one "$workload" "$target"
        done
    done
done

if [[ -n $RESULTS_OUT ]]; then cat "$results" >> "$RESULTS_OUT"; fi

# The table. Medians of REPEATS runs; errors summed over them; CPU per
# request is the target's (the backend for direct, the proxy alone otherwise)
# CPU time over its completed requests.

declare -A med_rps med_p99
for workload in $WORKLOADS; do
    for target in "${targets[@]}"; do
        med_rps[$workload/$target]=$(col "$workload" "$target" 3 | median)
        med_p99[$workload/$target]=$(col "$workload" "$target" 4 | median)
    done
done

# The better (by median requests/s) of haproxy and nginx at $2 threads, for
# workload $1.
better_of() {
    local h=${med_rps[$1/haproxy-$2]} n=${med_rps[$1/nginx-$2]}
    awk -v h="$h" -v n="$n" 'BEGIN {print (h >= n ? "haproxy" : "nginx")}'
}

echo
echo "| workload | target | threads | median req/s | median p99 (ms) | errors | CPU µs/req | kernel share | other CPU | ratio to direct | ratio to better of haproxy/nginx |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for workload in $WORKLOADS; do
    label="HTTP/1.1 keep-alive (wrk -c64)"
    [[ $workload == h2 ]] && label="HTTP/2 h2c (h2load -c16 -m10)"
    for target in "${targets[@]}"; do
        name=${target%%-*}
        threads=${target#*-}
        [[ $target == direct ]] && threads="-" && name="direct (backend)"
        [[ $name == floor ]] && name="hyper floor"
        errors=$(col "$workload" "$target" 5 | awk '{s += $1} END {print s + 0}')
        cpu_us=$(awk -v w="$workload" -v t="$target" -v hz="$hz" \
            '$1 == w && $2 == t {print ($7 / hz) * 1e6 / ($6 > 0 ? $6 : 1)}' "$results" | median)
        other=$(col "$workload" "$target" 8 | median)
        kernel=$(awk -v w="$workload" -v t="$target" \
            '$1 == w && $2 == t {print ($7 > 0 ? $9 * 100 / $7 : 0)}' "$results" | median)
        rps=${med_rps[$workload/$target]}
        ratio_direct=$(awk -v a="$rps" -v b="${med_rps[$workload/direct]}" 'BEGIN {printf "%.2f", a / b}')
        vs="-"
        if [[ $target != direct ]]; then
            best=$(better_of "$workload" "$threads")
            vs=$(awk -v a="$rps" -v b="${med_rps[$workload/$best-$threads]}" 'BEGIN {printf "%.2f", a / b}')
            [[ $name == weir ]] && vs="**$vs×**"
        fi
        printf '| %s | %s | %s | %.0f | %.2f | %s | %.1f | %.0f%% | %s%% | %s | %s |\n' \
            "$label" "$name" "$threads" "$rps" "${med_p99[$workload/$target]}" "$errors" \
            "$cpu_us" "$kernel" "$other" "$ratio_direct" "$vs"
    done
done
echo
for workload in $WORKLOADS; do
    for t in $THREADS; do
        best=$(better_of "$workload" "$t")
        awk -v label="$workload" -v t="$t" -v best="$best" \
            -v w="${med_rps[$workload/weir-$t]}" -v b="${med_rps[$workload/$best-$t]}" \
            -v wp="${med_p99[$workload/weir-$t]}" -v bp="${med_p99[$workload/$best-$t]}" 'BEGIN {
            r = w / b; pr = wp / bp
            met = (r >= 1.0 && wp <= bp)
            printf "%s, %s thread(s): weir/%s = %.2f× req/s, p99 %.2f ms vs %.2f ms (%.2f×): target %s\n",
                label, t, best, r, wp, bp, pr, (met ? "met" : "NOT met")
        }'
    done
done
echo "wrk -t1 -c64 -d${DURATION}s --latency; h2load -t1 -c16 -m10 -D${DURATION} (p99 from --log-file); medians of $REPEATS runs; $(nproc) CPUs shared by the load generator, the backend and the proxy"
echo "CPU µs/req: the target's CPU time (the backend for direct, else the proxy alone) per completed request; kernel share: the system-time part of it."
echo "other CPU: share of the machine's CPU time used by processes outside the benchmark during the runs (median); above a few % the figures are disturbed."
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
