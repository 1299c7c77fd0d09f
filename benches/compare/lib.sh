# Shared helpers of the side-by-side benchmark scripts (run.sh, l4.sh,
# http.sh, udp_dns.sh, jwt.sh, ratelimit.sh):
# sourced, not run. They expect `set -euo pipefail`, and set:
#   $work          a temporary directory, removed on exit
#   $server_groups process groups of every server started (stopped on exit)
#   $root          the repository; $weir_bin the weir to measure (WEIR_BIN,
#                  or target/release/weir, built by `build_weir` unless
#                  SKIP_BUILD=1)
#   $results       (by the caller) the file `col` reads
# The caller must set `hz` before `count_children`.

SKIP_BUILD=${SKIP_BUILD:-0}
# Benchmark this weir binary instead of building target/release/weir.
WEIR_BIN=${WEIR_BIN:-}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
weir_bin=${WEIR_BIN:-"$root/target/release/weir"}

# Prints an error naming the calling script and exits 1.
die() {
    echo "${0##*/}: $*" >&2
    exit 1
}

need() {
    command -v "$1" > /dev/null 2>&1 || [[ -x "$1" ]] || die "missing $1 (install: $2)"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/weir-${0##*/}.XXXXXX")
# Process-group ids of every server started (each is its own group leader).
server_groups=()

stop_group() {
    local pgid=$1 i
    kill -TERM -- "-$pgid" 2> /dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 -- "-$pgid" 2> /dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$pgid" 2> /dev/null || true
}

cleanup() {
    local status=$? pgid
    trap - EXIT INT TERM
    for pgid in "${server_groups[@]}"; do
        stop_group "$pgid"
    done
    wait 2> /dev/null || true
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts "$@" in the background in a process group of its own, output to the
# log file $1 (shifted off); records the group and sets $last_pid.
spawn() {
    local log=$1
    shift
    # Non-interactive bash puts a background job in the script's group, so
    # setsid does not fork: $! is the new group's leader.
    setsid "$@" < /dev/null > "$log" 2>&1 &
    local pid=$!
    server_groups+=("$pid")
    last_pid=$pid
}

# Ports come from below the kernel's ephemeral range, so that the load
# generators' and proxies' outgoing connections cannot take them.
read -r ephemeral_low _ < /proc/sys/net/ipv4/ip_local_port_range
port_base=$((ephemeral_low > 20000 ? 10000 : 1024))
port_span=$((ephemeral_low - port_base))
# An odd ephemeral range (starting very low): fall back to any high port.
((port_span >= 1000)) || { port_base=20000; port_span=40000; }
used_ports=" "
free_port() {
    local port i
    for ((i = 0; i < 200; i++)); do
        port=$((port_base + RANDOM % port_span))
        [[ $used_ports == *" $port "* ]] && continue
        if ! ss -Hantu "( sport = :$port )" | grep -q .; then
            used_ports+="$port "
            free=$port
            return
        fi
    done
    die "no free port found"
}

# Clock ticks of a process group's processes ($1), summed over the fields
# of /proc/PID/stat whose indices follow (counted after the command name
# "(...)": 11 utime, 12 stime, 13 cutime, 14 cstime), children that have
# exited and been waited for included (the PostgreSQL backends of finished
# client connections).
group_ticks() {
    local pgid=$1 total=0 pid stat i
    shift
    for pid in $(pgrep -g "$pgid" 2> /dev/null || true); do
        stat=$(cat "/proc/$pid/stat" 2> /dev/null) || continue
        stat=${stat##*) }
        read -r -a f <<< "$stat"
        for i in "$@"; do total=$((total + f[i])); done
    done
    echo "$total"
}

# CPU time (user + system) of a process group.
cpu_ticks() { group_ticks "$1" 11 12 13 14; }

# The kernel's part of cpu_ticks: system time (stime + cstime) alone.
kernel_ticks() { group_ticks "$1" 12 14; }

# Busy and total clock ticks of the whole machine (all CPUs), from /proc/stat.
machine_ticks() {
    local _cpu user nice system idle iowait irq softirq steal
    read -r _cpu user nice system idle iowait irq softirq steal _ < /proc/stat
    echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

child_ticks=0
count_children() {
    times > "$work/times.txt"
    child_ticks=$(awk -v hz="$hz" 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
        printf "%d", t * hz
    }' "$work/times.txt")
}

# The median of the numbers on standard input.
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# Column $3 of the results line for workload $1 and target $2.
col() { awk -v w="$1" -v t="$2" -v c="$3" '$1 == w && $2 == t {print $c}' "$results"; }

# Resident memory (VmRSS, bytes) of all the processes of a process group.
group_rss() {
    local pgid=$1 total=0 pid kb
    for pid in $(pgrep -g "$pgid" 2> /dev/null || true); do
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2> /dev/null) || continue
        total=$((total + ${kb:-0}))
    done
    echo $((total * 1024))
}

# CPU accounting around one load run (used by l4.sh): `measure_begin PGID
# BACKEND_PGID` before, `measure_end PGID BACKEND_PGID` after; sets
# $run_ticks (the target's own CPU ticks), $run_kernel (the system part of
# them) and $run_other (% of the machine's
# CPU used by everything outside the benchmark: the target, the backend and
# this script's children). Needs $hz.
measure_begin() {
    m_before=$(cpu_ticks "$1")
    m_k0=$(kernel_ticks "$1")
    m_b0=$(cpu_ticks "$2")
    count_children
    m_c0=$child_ticks
    m_m0=$(machine_ticks)
}
measure_end() {
    local after b1 own m1
    m1=$(machine_ticks)
    count_children
    b1=$(cpu_ticks "$2")
    after=$(cpu_ticks "$1")
    run_ticks=$((after - m_before))
    run_kernel=$(($(kernel_ticks "$1") - m_k0))
    own=$((run_ticks + child_ticks - m_c0))
    [[ $1 != "$2" ]] && own=$((own + b1 - m_b0))
    run_other=$(awk -v m0="$m_m0" -v m1="$m1" -v own="$own" 'BEGIN {
        split(m0, a, " "); split(m1, b, " ")
        busy = b[1] - a[1]; total = b[2] - a[2]
        o = (busy - own) * 100 / (total > 0 ? total : 1)
        printf "%.0f", (o < 0 ? 0 : o)
    }')
}

# Builds weir (release, --locked) unless SKIP_BUILD=1 or WEIR_BIN names a
# binary; dies without an executable $weir_bin.
build_weir() {
    if [[ ${SKIP_BUILD:-0} != 1 && -z ${WEIR_BIN:-} ]]; then
        echo "building weir (release)..." >&2
        (cd "$root" && cargo build --release --locked)
    fi
    [[ -x $weir_bin ]] || die "no $weir_bin (build first)"
}

# Waits until GET / through 127.0.0.1:$1 answers "$BODY" over HTTP/1.1 and,
# if $2 is set, over h2c on port $2; dies naming $3 with the tail of log $4.
await_http() {
    local port=$1 h2port=$2 what=$3 log=$4 i
    for ((i = 0; i < 100; i++)); do
        if [[ $(curl -s --max-time 1 "http://127.0.0.1:$port/" 2> /dev/null) == "$BODY" ]] &&
            { [[ -z $h2port ]] ||
                [[ $(curl -s --max-time 1 --http2-prior-knowledge "http://127.0.0.1:$h2port/" 2> /dev/null) == "$BODY" ]]; }; then
            return 0
        fi
        sleep 0.1
    done
    echo "--- $log" >&2
    tail -n 20 "$log" >&2 || true
    die "$what on port $port${h2port:+/$h2port} does not answer"
}

# NGINX from Debian, and the `user` line its configuration needs as root
# (nginx would switch its workers to `nobody`, who cannot use the temp dir).
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
user_line=""
[[ $(id -u) == 0 ]] && user_line="user root root;"

# The top of an nginx.conf for a private instance in $1 with $2 worker
# processes (runs as root when we are root, pid and error log in $1).
nginx_main() {
    cat << EOF
$user_line
daemon off;
master_process on;
worker_processes $2;
pid $1/nginx.pid;
error_log $1/error.log warn;
EOF
}

# An http block's common lines for an instance in $1: no access log, temp
# files in $1, keep-alive connections that last the whole run.
nginx_http_common() {
    cat << EOF
    access_log off;
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
EOF
}

# Writes $1/nginx.conf for the shared backend: one NGINX worker answering
# every request with 200 "$BODY" on 127.0.0.1:$2 (and cleartext HTTP/2 on
# 127.0.0.1:$3 when given), keep-alive without limits, no logs.
write_nginx_backend_conf() {
    local dir=$1 port=$2 h2_port=${3:-} h2_listen=""
    [[ -n $h2_port ]] && h2_listen="listen 127.0.0.1:$h2_port http2;"
    mkdir -p "$dir"
    cat > "$dir/nginx.conf" << EOF
$(nginx_main "$dir" 1)
events { worker_connections 8192; }
http {
$(nginx_http_common "$dir")
    default_type text/plain;
    server {
        listen 127.0.0.1:$port;
        $h2_listen
        location / { return 200 "$BODY"; }
    }
}
EOF
}
