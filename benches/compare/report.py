#!/usr/bin/env python3
"""The combined table, verdicts and chart of run.sh (issue 7).

  report.py RAW HZ [--docs FILE] [--chart PNG] [--meta TEXT]

RAW holds one line per measurement, "workload target value p99-ms errors
units cpu-ticks other-% [kernel-ticks]" (l4.sh, http.sh and udp_dns.sh write them; run.sh
renames udp_dns.sh's workload to "dns", whose p99 column is "-" and whose
errors are lost queries). Prints a markdown table (medians over the runs)
and one verdict line per target and thread count; with --docs, replaces the
text between the marker comments in FILE with the same (plus --meta and the
chart); with --chart, draws the ratios of weir to HAProxy and NGINX as a
PNG (matplotlib, Agg backend).
"""

import argparse
import os
import re
import statistics
import sys

BEGIN = "<!-- harness:results:begin (written by benches/compare/run.sh) -->"
END = "<!-- harness:results:end -->"

# workload -> (label, unit of value, CPU unit, what one unit of the value is)
WORKLOADS = {
    "bulk1": ("L4 TCP bulk, iperf3 -P 1", "Gbit/s", "µs/MB"),
    "bulk4": ("L4 TCP bulk, iperf3 -P 4", "Gbit/s", "µs/MB"),
    "churn": ("L4 connection churn, wrk -c64 Connection: close", "conn/s", "µs/conn"),
    "redis-ping-P1": ("L4 redis-benchmark PING -P 1", "req/s", "µs/req"),
    "redis-set-P1": ("L4 redis-benchmark SET -P 1", "req/s", "µs/req"),
    "redis-get-P1": ("L4 redis-benchmark GET -P 1", "req/s", "µs/req"),
    "redis-ping-P16": ("L4 redis-benchmark PING -P 16", "req/s", "µs/req"),
    "redis-set-P16": ("L4 redis-benchmark SET -P 16", "req/s", "µs/req"),
    "redis-get-P16": ("L4 redis-benchmark GET -P 16", "req/s", "µs/req"),
    "pgbench": ("L4 pgbench -S -c 8", "txn/s", "µs/txn"),
    "h1": ("L7 HTTP/1.1 keep-alive, wrk -c64", "req/s", "µs/req"),
    "h2": ("L7 HTTP/2 h2c, h2load -c16 -m10", "req/s", "µs/req"),
    "dns": ("UDP DNS, dnsperf -c20 -q100", "q/s", "µs/query"),
    "idle": ("memory per idle TCP connection", "B/conn", "-"),
}
ORDER = list(WORKLOADS)
SHORT = {
    "bulk1": "bulk\nP1", "bulk4": "bulk\nP4", "churn": "churn",
    "redis-ping-P1": "redis\nPING\nP1", "redis-set-P1": "redis\nSET\nP1",
    "redis-get-P1": "redis\nGET\nP1", "redis-ping-P16": "redis\nPING\nP16",
    "redis-set-P16": "redis\nSET\nP16", "redis-get-P16": "redis\nGET\nP16",
    "pgbench": "pgbench\n-S", "h1": "HTTP/1.1", "h2": "HTTP/2", "dns": "DNS",
    "idle": "idle\nmemory",
}


def load(path, hz):
    runs = {}
    for line in open(path):
        f = line.split()
        if len(f) < 8:
            continue
        w, t = f[0], f[1]
        value = float(f[2])
        p99 = None if f[3] == "-" else float(f[3])
        errors = float(f[4])
        units = float(f[5])
        ticks = float(f[6])
        other = float(f[7])
        cpu = None
        if w != "idle" and units > 0:
            cpu = ticks / hz * 1e6 / units
        # The kernel's share of that CPU (system time over all of it).
        kernel = None
        if len(f) > 8 and ticks > 0:
            kernel = float(f[8]) / ticks
        runs.setdefault((w, t), []).append((value, p99, errors, cpu, other, kernel))
    return runs


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarise(runs):
    s = {}
    for key, rs in runs.items():
        s[key] = {
            "value": med(r[0] for r in rs),
            "p99": med(r[1] for r in rs),
            "errors": sum(r[2] for r in rs),
            "worst": max(r[2] for r in rs),
            "cpu": med(r[3] for r in rs),
            "other": med(r[4] for r in rs),
            "kernel": med(r[5] for r in rs),
            "n": len(rs),
        }
    return s


def fmt_value(v, unit):
    if v is None:
        return "-"
    if unit == "Gbit/s":
        return "%.2f" % v
    return "%.0f" % v


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r, bold=False):
    if r is None:
        return "n/a"
    text = "%.2f" % r
    return "**%s×**" % text if bold else text


def table(s, threads):
    out = []
    out.append("| workload | target | threads | median | unit | median p99 (ms) | errors / lost | proxy CPU | other CPU | ratio to direct | ratio to HAProxy | ratio to NGINX |")
    out.append("|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for w in ORDER:
        if not any(k[0] == w for k in s):
            continue
        label, unit, cpu_unit = WORKLOADS[w]
        # "floor": the hyper floor beside weir's L7 rows (http.sh).
        targets = ["direct"] + ["%s-%s" % (k, t) for t in threads for k in ("haproxy", "nginx", "weir", "floor")]
        direct = s.get((w, "direct"))
        for target in targets:
            r = s.get((w, target))
            name, _, th = target.partition("-")
            if r is None:
                if name == "haproxy" and w == "dns":
                    out.append("| %s | haproxy | %s | n/a (no generic UDP) | | | | | | | | |" % (label, th))
                continue
            v = r["value"]
            rd = ratio(v, direct["value"]) if direct else None
            rh = ratio(v, s[(w, "haproxy-" + th)]["value"]) if (w, "haproxy-" + th) in s and name != "direct" else None
            rn = ratio(v, s[(w, "nginx-" + th)]["value"]) if (w, "nginx-" + th) in s and name != "direct" else None
            bold = name == "weir"
            cpu = "-" if r["cpu"] is None else ("%.1f %s" % (r["cpu"], cpu_unit))
            if cpu != "-" and r["kernel"] is not None:
                cpu += ", %.0f%% kernel" % (r["kernel"] * 100)
            if name == "floor":
                name = "hyper floor (bare hyper proxy)"
            if name == "direct":
                name = "direct (no proxy)"
                th = "-"
                cpu = cpu + " (backend)" if cpu != "-" else cpu
            errors = "%d" % r["errors"]
            if w == "dns":
                errors = "%d (worst run %d)" % (r["errors"], r["worst"])
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label, name, th, fmt_value(v, unit), unit,
                "-" if r["p99"] is None else "%.2f" % r["p99"], errors, cpu,
                ("%.0f%%" % r["other"]) if w != "idle" else "-",
                fmt_ratio(rd), fmt_ratio(rh, bold and rh is not None), fmt_ratio(rn, bold and rn is not None)))
    return out


def verdicts(s, threads):
    """(lines, chart rows): chart rows are (workload, threads, vs_haproxy,
    vs_nginx, target, floor) with ratios oriented so that higher is better;
    floor is the hyper floor's (vs_haproxy, vs_nginx) on the L7 rows, else
    None."""
    lines, chart = [], []

    def g(w, t):
        return s.get((w, t))

    for w in ORDER:
        for t in threads:
            wr, hr, nr, dr = g(w, "weir-" + t), g(w, "haproxy-" + t), g(w, "nginx-" + t), g(w, "direct")
            if wr is None:
                continue
            label = "%s, %s thread(s)" % (w, t)
            fr = g(w, "floor-" + t)
            floor = None
            if fr is not None:
                floor = (ratio(fr["value"], hr["value"]) if hr else None,
                         ratio(fr["value"], nr["value"]) if nr else None)
            vh = ratio(wr["value"], hr["value"]) if hr else None
            vn = ratio(wr["value"], nr["value"]) if nr else None
            if w in ("bulk1", "bulk4"):
                vd = ratio(wr["value"], dr["value"]) if dr else None
                ok = vh is not None and vh >= 1.0 and vd is not None and vd >= 0.65
                lines.append("%s: weir/haproxy = %.2f× (≥ 1.0×), weir/direct = %.2f× (≥ 0.65×), weir/nginx = %.2f×: target %s" % (
                    label, vh or 0, vd or 0, vn or 0, "met" if ok else "NOT met"))
                chart.append((w, t, vh, vn, 1.0, None))
            elif w == "churn":
                ok = vh is not None and vn is not None and vh >= 1.1 and vn >= 1.1
                lines.append("%s: weir/haproxy = %.2f×, weir/nginx = %.2f× (both ≥ 1.1×): target %s" % (
                    label, vh or 0, vn or 0, "met" if ok else "NOT met"))
                chart.append((w, t, vh, vn, 1.1, None))
            elif w.startswith("redis-") or w == "pgbench":
                p_ok = all(x is not None and wr["p99"] is not None and x["p99"] is not None and wr["p99"] <= x["p99"] for x in (hr, nr))
                ok = vh is not None and vn is not None and vh >= 1.05 and vn >= 1.05 and p_ok
                lines.append("%s: weir/haproxy = %.2f×, weir/nginx = %.2f× (both ≥ 1.05×); p99 weir %.2f ms, haproxy %.2f, nginx %.2f (%s): target %s" % (
                    label, vh or 0, vn or 0, wr["p99"] or 0, (hr or {}).get("p99") or 0, (nr or {}).get("p99") or 0,
                    "no worse" if p_ok else "WORSE", "met" if ok else "NOT met"))
                chart.append((w, t, vh, vn, 1.05, None))
            elif w == "h1":
                best, bname = (hr, "haproxy") if (hr and (not nr or hr["value"] >= nr["value"])) else (nr, "nginx")
                vb = ratio(wr["value"], best["value"])
                p_ok = wr["p99"] is not None and best["p99"] is not None and wr["p99"] <= best["p99"]
                ok = vb is not None and vb >= 1.1 and p_ok
                lines.append("%s: weir/%s (the better) = %.2f× req/s (≥ 1.1×), p99 %.2f ms vs %.2f ms (%s): target %s" % (
                    label, bname, vb or 0, wr["p99"] or 0, best["p99"] or 0, "no worse" if p_ok else "WORSE",
                    "met" if ok else "NOT met"))
                chart.append((w, t, vh, vn, 1.1, floor))
            elif w == "h2":
                ok = vh is not None and vh >= 1.0
                lines.append("%s: weir/haproxy = %.2f× req/s (≥ 1.0×), weir/nginx = %.2f×: target %s" % (
                    label, vh or 0, vn or 0, "met" if ok else "NOT met"))
                chart.append((w, t, vh, vn, 1.0, floor))
            elif w == "dns":
                floor = max(nr["worst"] if nr else 0, dr["worst"] if dr else 0)
                l_ok = wr["worst"] <= floor
                ok = vn is not None and vn >= 1.5 and l_ok
                lines.append("%s: weir/nginx = %.2f× q/s (≥ 1.5×); lost, worst run: weir %d, nginx %d, direct %d (%s): target %s" % (
                    label, vn or 0, wr["worst"], nr["worst"] if nr else 0, dr["worst"] if dr else 0,
                    "no more lost" if l_ok else "MORE lost", "met" if ok else "NOT met"))
                chart.append((w, t, None, vn, 1.5, None))
            elif w == "idle":
                b = wr["value"]
                hb = hr["value"] if hr else None
                ok = b <= 3072 and hb is not None and b < hb
                lines.append("%s: weir %.0f B/conn (≤ 3072 and below haproxy's %s), nginx %s: target %s" % (
                    label, b, "%.0f" % hb if hb is not None else "n/a",
                    "%.0f" % nr["value"] if nr else "n/a", "met" if ok else "NOT met"))
                # Lower is better: the peer's bytes over weir's.
                chart.append((w, t, ratio(hb, b) if hb else None, ratio(nr["value"], b) if nr else None,
                              max(1.0, ratio(hb, 3072)) if hb else None, None))
    return lines, chart


def draw(chart, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(chart)
    fig, ax = plt.subplots(figsize=(max(8, 0.5 * n + 2), 5.5))
    xs = range(n)
    width = 0.38
    vh = [c[2] if c[2] is not None else 0 for c in chart]
    vn = [c[3] if c[3] is not None else 0 for c in chart]
    ax.bar([x - width / 2 for x in xs], vh, width, label="weir / HAProxy", color="#4c72b0")
    ax.bar([x + width / 2 for x in xs], vn, width, label="weir / NGINX", color="#dd8452")
    for x, c in zip(xs, chart):
        if c[2] is None:
            ax.text(x - width / 2, 0.02, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
        if c[4] is not None:
            ax.plot([x - width, x + width], [c[4], c[4]], color="black", linewidth=1.5)
        for dx, v in zip((-width / 2, width / 2), c[5] or ()):
            if v is not None:
                ax.plot([x + dx], [v], marker="D", markersize=4, color="#c44e52", linestyle="none")
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(["%s\n%s thr" % (SHORT[c[0]], c[1]) for c in chart], fontsize=7)
    top = max([v for v in vh + vn] + [c[4] or 0 for c in chart]
              + [v for c in chart for v in (c[5] or ()) if v is not None])
    ax.set_ylim(0, top * 1.2)
    ax.set_ylabel("weir's ratio (higher is better for weir)")
    ax.set_title(title, fontsize=10)
    ax.plot([], [], color="black", linewidth=1.5, label="target")
    if any(c[5] for c in chart):
        ax.plot([], [], marker="D", markersize=4, color="#c44e52", linestyle="none",
                label="hyper floor / peer (L7)")
    ax.legend(fontsize=8, loc="upper left", ncol=3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("hz", type=float)
    ap.add_argument("--threads", default="1 2")
    ap.add_argument("--docs")
    ap.add_argument("--chart")
    ap.add_argument("--chart-link", default="bench/ratios.png")
    ap.add_argument("--meta", default="")
    a = ap.parse_args()
    threads = a.threads.split()
    s = summarise(load(a.raw, a.hz))
    rows = table(s, threads)
    lines, chart = verdicts(s, threads)
    print("\n".join(rows))
    print()
    print("\n".join(lines))
    if a.chart and chart:
        draw(chart, a.chart, "weir vs HAProxy and NGINX, same thread count (medians; memory: peer bytes / weir bytes)")
    if a.docs:
        block = [BEGIN, ""]
        if a.meta:
            block += [a.meta, ""]
        block += rows + ["", "The script's verdict lines:", "", "```"] + lines + ["```", ""]
        if a.chart and chart:
            block += ["![weir's ratios to HAProxy and NGINX](%s)" % a.chart_link, ""]
        block.append(END)
        text = open(a.docs).read()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            text = head + "\n".join(block) + tail
        else:
            # No markers yet: put the block after the first section heading's paragraph.
            m = re.search(r"^## ", text, re.M)
            pos = m.start() if m else len(text)
            text = text[:pos] + "\n".join(block) + "\n\n" + text[pos:]
        open(a.docs, "w").write(text)
        print("wrote %s" % a.docs, file=sys.stderr)


if __name__ == "__main__":
    main()
