#!/usr/bin/env bash
# Rate-limit benchmark: requests/s through weir's L7 gateway with no rate
# limit, with a local policy, and with a global (Redis) policy, all in front
# of the same backend, on the same machine, in the same run (issue 6). A
# benchmark, not a test: it prints a table and never fails on the numbers.
#
# What it does:
#   1. `cargo build --release --locked` (skip with SKIP_BUILD=1, or give a
#      binary with WEIR_BIN).
#   2. Starts ONE backend (NGINX, `worker_processes 1`, a fixed 200 of 22
#      bytes) and one redis-server (no persistence), on free 127.0.0.1 ports.
#   3. Starts three weir instances, each `worker_threads = THREADS`, one
#      http listener, access log off, one route to the backend:
#      - none:  the route has no rate limit;
#      - local: `rate_limits = ["local"]`, a local policy keyed by client IP;
#      - redis: `rate_limits = ["global"]`, a global policy keyed by client IP
#        (every request is one EVALSHA on one hot key; redis-rs's
#        ConnectionManager multiplexes the 64 connections' checks on one
#        pipelined Redis connection), timeout 50 ms, fail_open.
#      Both policies allow 1000000000/s: nothing is refused, so the cost of
#      the check itself is measured; a 429 or a Redis error would show as
#      errors / in weir's metrics (printed at the end).
#   4. Runs `wrk -t1 -c64 -dDURATION` (HTTP/1.1 keep-alive) against each,
#      interleaved round by round, REPEATS times.
#   5. Prints per target the median requests/s, p99, errors, weir's CPU per
#      request and the ratio to `none`, then the verdict against issue 6's
#      targets: local >= 0.95x none (overhead < 5%), redis >= 0.50x none.
#
# Usage: benches/compare/ratelimit.sh
# Knobs (environment): REPEATS=3 DURATION=5 THREADS=1 SKIP_BUILD=0 WEIR_BIN=
# Needs: nginx, redis-server, wrk, curl, ss (iproute2).

set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPEATS=${REPEATS:-3}
DURATION=${DURATION:-5}
THREADS=${THREADS:-1}
BODY="hello from the backend"


need wrk wrk
need curl curl
need ss iproute2
need timeout coreutils
need redis-server redis-server
need "$NGINX" nginx

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
build_weir


free_port
backend_port=$free
dir="$work/backend"
mkdir -p "$dir"
write_nginx_backend_conf "$dir" "$backend_port"
spawn "$dir/stdout.log" "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
await_http "$backend_port" "" "backend nginx" "$dir/error.log"

free_port
redis_port=$free
mkdir -p "$work/redis"
spawn "$work/redis/redis.log" redis-server --port "$redis_port" --bind 127.0.0.1 \
    --save "" --appendonly no --protected-mode no --dir "$work/redis"
redis_ready=0
for ((i = 0; i < 100; i++)); do
    if [[ $(timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$redis_port && printf 'PING\r\n' >&3 && head -c 5 <&3" 2> /dev/null) == "+PONG" ]]; then
        redis_ready=1
        break
    fi
    sleep 0.1
done
((redis_ready)) || die "redis-server on port $redis_port does not answer"

declare -A port admin pgid
targets=(none local redis)
for target in "${targets[@]}"; do
    free_port
    p=$free
    free_port
    a=$free
    dir="$work/weir-$target"
    mkdir -p "$dir"
    limits=""
    [[ $target == local ]] && limits='rate_limits = ["local"]'
    [[ $target == redis ]] && limits='rate_limits = ["global"]'
    {
        printf '[admin]\naddress = "127.0.0.1:%s"\n\n[runtime]\nworker_threads = %s\n\n' "$a" "$THREADS"
        printf '[[listeners]]\nname = "web"\nbind = "127.0.0.1:%s"\nprotocol = "http"\naccess_log = "off"\n\n' "$p"
        printf '[[listeners.routes]]\nname = "all"\npath_prefix = "/"\npool = "web"\n%s\n\n' "$limits"
        printf '[[pools]]\nname = "web"\n\n[[pools.backends]]\nname = "nginx"\naddress = "127.0.0.1:%s"\n' "$backend_port"
        if [[ $target == local ]]; then
            printf '\n[[rate_limits]]\nname = "local"\nrate = "1000000000/s"\n'
        elif [[ $target == redis ]]; then
            printf '\n[[rate_limits]]\nname = "global"\nrate = "1000000000/s"\nscope = "global"\ntimeout = "50ms"\n'
            printf '\n[redis]\naddress = "127.0.0.1:%s"\n' "$redis_port"
        fi
    } > "$dir/weir.toml"
    spawn "$dir/weir.log" "$weir_bin" run -c "$dir/weir.toml"
    port[$target]=$p
    admin[$target]=$a
    pgid[$target]=$last_pid
    await_http "$p" "" "weir ($target)" "$dir/weir.log"
done

to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    }'
}

hz=$(getconf CLK_TCK)
results="$work/results.txt"
: > "$results"
run_one() {
    local target=$1 out="$work/wrk.out" before after rps p99 errors requests
    before=$(cpu_ticks "${pgid[$target]}")
    timeout $((DURATION + 30)) wrk -t1 -c64 -d"${DURATION}s" --latency \
        "http://127.0.0.1:${port[$target]}/" > "$out" 2>&1 || {
        cat "$out" >&2
        die "wrk against $target failed"
    }
    after=$(cpu_ticks "${pgid[$target]}")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    requests=$(awk '/requests in/ {print $1}' "$out")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    errors=$(awk '/Non-2xx or 3xx responses:/ {e += $NF}
        /Socket errors:/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10}
        END {print e + 0}' "$out")
    [[ -n $rps && -n $requests ]] || {
        cat "$out" >&2
        die "cannot parse wrk output against $target"
    }
    echo "h1 $target $rps $p99 $errors $requests $((after - before))" >> "$results"
    printf '  %-6s %10.0f req/s  p99 %7.3f ms  errors %s\n' "$target" "$rps" "$p99" "$errors" >&2
}

echo "warming up..." >&2
for target in "${targets[@]}"; do
    timeout 30 wrk -t1 -c64 -d1s "http://127.0.0.1:${port[$target]}/" > /dev/null 2>&1 || true
done
# Round-robin, so that a noisy moment hits every target alike.
for ((r = 1; r <= REPEATS; r++)); do
    echo "round $r/$REPEATS (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    for target in "${targets[@]}"; do
        run_one "$target"
    done
done

declare -A med
for target in "${targets[@]}"; do
    med[$target]=$(col h1 "$target" 3 | median)
done
echo
echo "| rate limit | median req/s | median p99 (ms) | errors | weir CPU µs/req | ratio to none |"
echo "|---|---:|---:|---:|---:|---:|"
for target in "${targets[@]}"; do
    errors=$(col h1 "$target" 5 | awk '{s += $1} END {print s + 0}')
    cpu_us=$(awk -v t="$target" -v hz="$hz" '$2 == t {print ($7 / hz) * 1e6 / ($6 > 0 ? $6 : 1)}' "$results" | median)
    printf '| %s | %.0f | %.2f | %s | %.1f | %.2f |\n' "$target" "${med[$target]}" \
        "$(col h1 "$target" 4 | median)" "$errors" "$cpu_us" \
        "$(awk -v a="${med[$target]}" -v b="${med[none]}" 'BEGIN {printf "%.2f", a / b}')"
done
echo
awk -v l="${med[local]}" -v r="${med[redis]}" -v n="${med[none]}" 'BEGIN {
    printf "local: %.2fx none (overhead %.1f%%): target < 5%% overhead %s\n", l / n, (1 - l / n) * 100, ((1 - l / n) < 0.05 ? "met" : "NOT met")
    printf "redis: %.2fx none: target >= 0.50x %s\n", r / n, (r / n >= 0.5 ? "met" : "NOT met")
}'
for target in local redis; do
    m=$(curl -s "http://127.0.0.1:${admin[$target]}/metrics" | grep -E '^weir_rate_limit_(decisions|redis_errors)_total' | tr '\n' ' ' || true)
    echo "weir ($target) metrics: ${m:-none}"
done
echo "wrk -t1 -c64 -d${DURATION}s; weir worker_threads = $THREADS; medians of $REPEATS runs; $(nproc) CPUs shared by wrk, nginx, redis-server and weir"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
