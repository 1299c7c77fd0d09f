#!/usr/bin/env bash
# JWT benchmark: requests/s through weir with RS256 authentication vs
# without, on HTTP/1.1 keep-alive, in front of the same backend, in the same
# run (issue 5). A benchmark, not a test: it prints a table and never fails
# on the numbers.
#
# What it does:
#   1. `cargo build --release --locked` (skip with SKIP_BUILD=1, or give a
#      binary with WEIR_BIN).
#   2. Makes an RSA-2048 key with openssl, and one RS256 token (valid for a
#      day, `iss` "bench", `aud` "api", `sub` "user-1") signed with it.
#   3. Starts ONE backend, NGINX (`worker_processes 1`, keep-alive) answering
#      every GET with a fixed 200, and ONE weir (THREADS worker threads,
#      access log off) with two routes to it: `/open` without auth and
#      `/auth` with `auth = "bench"`, a provider with the public key
#      (`public_key_files`), `claims_to_headers = { sub = "X-User-Id" }`.
#   4. Runs `wrk -t1 -c64 -dDURATION --latency` with the token in
#      `Authorization: Bearer` against /open and /auth, alternating, REPEATS
#      times each (the token is sent to /open too, so both requests carry the
#      same bytes).
#   5. Prints median requests/s and p99 of each, weir's CPU per request, and
#      the verdict against the issue's target: auth adds less than 15% to
#      the cost of a proxied request (req/s of /auth >= 0.85 x /open... in
#      cost terms, 1/rps or weir CPU per request).
#
# Everything it starts is stopped on exit; it uses only 127.0.0.1.
#
# Usage: benches/compare/jwt.sh
# Knobs (environment): REPEATS=3 DURATION=5 THREADS=1 SKIP_BUILD=0 WEIR_BIN=
# Needs: nginx, wrk, openssl, curl, ss (iproute2).

set -euo pipefail
# die, need, spawn, free_port, cleanup on exit, CPU accounting, median, col.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPEATS=${REPEATS:-3}
DURATION=${DURATION:-5}
THREADS=${THREADS:-1}
BODY="hello from the backend"


need wrk wrk
need openssl openssl
need curl curl
need ss iproute2
need "$NGINX" nginx

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
build_weir

# The key and the token.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/key.pem" 2> /dev/null
openssl pkey -in "$work/key.pem" -pubout -out "$work/pub.pem"
now=$(date +%s)
header=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
payload=$(printf '{"iss":"bench","aud":"api","sub":"user-1","exp":%d,"iat":%d}' $((now + 86400)) "$now" | b64url)
signature=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$work/key.pem" -binary | b64url)
token="$header.$payload.$signature"

waits_for() {
    local url=$1 what=$2 log=$3 i
    for ((i = 0; i < 100; i++)); do
        [[ $(curl -s --max-time 1 -H "Authorization: Bearer $token" "$url" 2> /dev/null) == "$BODY" ]] && return 0
        sleep 0.1
    done
    tail -n 20 "$log" >&2 || true
    die "$what ($url) does not answer"
}

# The backend.
free_port
backend_port=$free
dir="$work/backend"
mkdir -p "$dir"
write_nginx_backend_conf "$dir" "$backend_port"
spawn "$dir/stdout.log" "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf"
waits_for "http://127.0.0.1:$backend_port/" "backend nginx" "$dir/error.log"

# weir, one listener, an open route and an authenticated one.
free_port
port=$free
free_port
admin=$free
cat > "$work/weir.toml" << EOF
[admin]
address = "127.0.0.1:$admin"

[runtime]
worker_threads = $THREADS

[[listeners]]
name = "web"
bind = "127.0.0.1:$port"
protocol = "http"
access_log = "off"

[[listeners.routes]]
name = "open"
path_prefix = "/open"
pool = "web"

[[listeners.routes]]
name = "auth"
path_prefix = "/auth"
pool = "web"
auth = "bench"

[[pools]]
name = "web"

[[pools.backends]]
name = "nginx"
address = "127.0.0.1:$backend_port"

[[jwt_providers]]
name = "bench"
issuer = "bench"
audiences = ["api"]
algorithms = ["RS256"]
public_key_files = ["$work/pub.pem"]
claims_to_headers = { sub = "X-User-Id" }
EOF
spawn "$work/weir.log" "$weir_bin" run -c "$work/weir.toml"
weir_pgid=$last_pid
waits_for "http://127.0.0.1:$port/open" "weir /open" "$work/weir.log"
waits_for "http://127.0.0.1:$port/auth" "weir /auth" "$work/weir.log"
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/auth") == 401 ]] ||
    die "weir /auth admits a request without a token"

hz=$(getconf CLK_TCK)
results="$work/results.txt"
: > "$results"
# One run against path $1: appends "h1 path req/s p99-ms errors requests weir-ticks".
run_one() {
    local path=$1 out="$work/wrk.out" before after rps p99 errors requests
    before=$(cpu_ticks "$weir_pgid")
    timeout $((DURATION + 30)) wrk -t1 -c64 -d"${DURATION}s" --latency \
        -H "Authorization: Bearer $token" "http://127.0.0.1:$port$path" > "$out" 2>&1 || {
        cat "$out" >&2
        die "wrk against $path failed"
    }
    after=$(cpu_ticks "$weir_pgid")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    requests=$(awk '/requests in/ {print $1}' "$out")
    p99=$(awk '$1 == "99%" {v = $2; if (v ~ /us$/) {sub(/us$/, "", v); v /= 1000} else if (v ~ /ms$/) sub(/ms$/, "", v); else {sub(/s$/, "", v); v *= 1000}; print v}' "$out")
    errors=$(awk '/Non-2xx or 3xx responses:/ {e += $NF} /Socket errors:/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10} END {print e + 0}' "$out")
    echo "h1 $path $rps $p99 $errors $requests $((after - before))" >> "$results"
    printf '  %-6s %10.0f req/s  p99 %8.3f ms  errors %s\n' "$path" "$rps" "$p99" "$errors" >&2
}

echo "warming up..." >&2
for path in /open /auth; do
    timeout 30 wrk -t1 -c64 -d1s -H "Authorization: Bearer $token" "http://127.0.0.1:$port$path" > /dev/null 2>&1 || true
done
for ((r = 1; r <= REPEATS; r++)); do
    echo "round $r/$REPEATS (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    run_one /open
    run_one /auth
done

echo
echo "| route | median req/s | median p99 (ms) | errors | weir CPU µs/req |"
echo "|---|---:|---:|---:|---:|"
declare -A rps cpu
for path in /open /auth; do
    rps[$path]=$(col h1 "$path" 3 | median)
    p99=$(col h1 "$path" 4 | median)
    errors=$(col h1 "$path" 5 | awk '{s += $1} END {print s + 0}')
    cpu[$path]=$(awk -v p="$path" -v hz="$hz" '$2 == p {print ($7 / hz) * 1e6 / ($6 > 0 ? $6 : 1)}' "$results" | median)
    label="$path (no auth)"
    [[ $path == /auth ]] && label="$path (RS256)"
    printf '| %s | %.0f | %.2f | %s | %.1f |\n' "$label" "${rps[$path]}" "$p99" "$errors" "${cpu[$path]}"
done
echo
awk -v o="${rps[/open]}" -v a="${rps[/auth]}" -v co="${cpu[/open]}" -v ca="${cpu[/auth]}" 'BEGIN {
    wall = (o / a - 1) * 100; cpu = (ca / co - 1) * 100
    printf "auth adds %.1f%% to the time per request (1/req/s) and %.1f%% to weir'"'"'s CPU per request: target (< 15%%) %s\n",
        wall, cpu, (wall < 15 ? "met" : "NOT met")
}'
echo "wrk -t1 -c64 -d${DURATION}s --latency, token in Authorization: Bearer on both routes; medians of $REPEATS runs; weir worker_threads = $THREADS; $(nproc) CPUs shared by wrk, the backend and weir"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
