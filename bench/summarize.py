#!/usr/bin/env python3
"""Summaries of agentd-bench JSON for bench/run.sh.

  summarize.py FILE                      one line per target and per "added" row
  summarize.py --sustained RATE FILE     exit 1 unless every target had < 0.1% errors
                                         and completed >= 99% of RATE per second
  summarize.py --stages BEFORE AFTER     mean time per stage from two /metrics scrapes
  summarize.py --repeats FILE...         added p50/p99 of each run of one setting, and
                                         their median
  summarize.py --cost FILE...            `cost` scenario files (cost-BACKEND-VARIANT-LOAD-runN):
                                         per backend and load, the median added TTFT and
                                         total p50 of each variant, and the change from `before`
  summarize.py --guardrails FILE...      the same for `guardrails` files
                                         (guardrails-MOCK-VARIANT-LOAD-runN)
"""
import json
import re
import sys


def summary(path):
    report = json.load(open(path))
    print(report["mode"])
    for name, t in report["targets"].items():
        res = "; ".join(
            f"{w}: RSS {r['rss_start_mb']:.1f}->{r['rss_max_mb']:.1f}->{r['rss_end_mb']:.1f} MB, CPU {r['cpu_percent']:.0f}%"
            for w, r in t["resources"].items()
        )
        print(f"  {name:<14} requests {t['requests']:>7} ok/s {t['ok_per_second']:>8.1f} errors {t['errors']} {res}")
    for name, row in report["latency"].items():
        ttft, total = row["ttft_ms"], row["total_ms"]
        print(
            f"  {name:<14} ttft p50 {ttft['p50']} p99 {ttft['p99']} max {ttft['max']} | "
            f"total p50 {total['p50']} p99 {total['p99']} max {total['max']} (ms)"
        )
    return report


def sustained(rate, path):
    report = json.load(open(path))
    for name, t in report["targets"].items():
        errors = sum(t["errors"].values())
        if t["requests"] == 0 or errors / t["requests"] >= 0.001 or t["ok_per_second"] < 0.99 * rate:
            print(f"  {name} did not sustain {rate} req/s", file=sys.stderr)
            return False
    return True


def samples(path):
    values = {}
    for line in open(path):
        m = re.match(r"^(\w+)(\{[^}]*\})? ([0-9.eE+-]+)$", line.strip())
        if m:
            values[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return values


def stages(before_path, after_path):
    before, after = samples(before_path), samples(after_path)

    def delta(prefix):
        total = {"sum": 0.0, "count": 0.0}
        for key, value in after.items():
            for kind in total:
                if key.startswith(f"{prefix}_{kind}"):
                    total[kind] += value - before.get(key, 0.0)
        return total

    for name, prefix in [
        ("model calls", "gen_ai_client_operation_duration_seconds"),
        ("tool calls", "agentd_tool_duration_seconds"),
        ("first token (turn start to first delta)", "agentd_time_to_first_token_seconds"),
        ("session writes (durable, before completed)", "agentd_session_write_seconds"),
    ]:
        d = delta(prefix)
        if d["count"]:
            line = f"  {name}: {int(d['count'])}, mean {1e3 * d['sum'] / d['count']:.3f} ms"
            bound = p99_bound(before, after, prefix, d["count"])
            if bound is not None:
                line += f", p99 <= {1e3 * bound:g} ms (histogram bucket)"
            print(line)


def p99_bound(before, after, prefix, count):
    """The upper bound of the histogram bucket holding the 99th percentile."""
    buckets = {}
    for key, value in after.items():
        m = re.match(rf'^{prefix}_bucket\{{.*le="([^"]+)".*\}}$', key)
        if m and m.group(1) != "+Inf":
            le = float(m.group(1))
            buckets[le] = buckets.get(le, 0.0) + value - before.get(key, 0.0)
    for le in sorted(buckets):
        if buckets[le] >= 0.99 * count:
            return le
    return None


def repeats(paths):
    rows = []
    for path in paths:
        added = json.load(open(path))["latency"]["agentd added"]
        row = [added["ttft_ms"]["p50"], added["ttft_ms"]["p99"], added["total_ms"]["p50"], added["total_ms"]["p99"]]
        rows.append(row)
        print(f"  {path.rsplit('/', 1)[-1]:<40} added ttft p50 {row[0]:7.3f} p99 {row[1]:7.3f} | total p50 {row[2]:7.3f} p99 {row[3]:7.3f} (ms)")
    median = [sorted(col)[len(col) // 2] for col in zip(*rows)]
    print(f"  {'median of ' + str(len(rows)) + ' runs':<40} added ttft p50 {median[0]:7.3f} p99 {median[1]:7.3f} | total p50 {median[2]:7.3f} p99 {median[3]:7.3f} (ms)")


def cost(paths, prefix="cost", names=("before", "none", "limits")):
    groups = {}
    for path in paths:
        m = re.search(prefix + r"-([\w-]+?)-(" + "|".join(names) + r")-(\w+)-run\d+\.json$", path)
        if not m:
            continue
        backend, variant, load = m.groups()
        added = json.load(open(path))["latency"]["agentd added"]
        groups.setdefault((backend, load), {}).setdefault(variant, []).append(
            (added["ttft_ms"]["p50"], added["total_ms"]["p50"])
        )
    for (backend, load), variants in sorted(groups.items()):
        med = {
            v: [sorted(col)[len(col) // 2] for col in zip(*rows)]
            for v, rows in variants.items()
        }
        base = med.get("before")
        for variant in names:
            if variant not in med:
                continue
            ttft, total = med[variant]
            delta = ""
            if base and variant != "before":
                delta = f"  change ttft {ttft - base[0]:+.3f} total {total - base[1]:+.3f}"
            print(
                f"{backend:<15} {load:<10} {variant:<7} runs {len(variants[variant])}: "
                f"added ttft p50 {ttft:.3f} total p50 {total:.3f} (ms){delta}"
            )


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[0] == "--sustained":
        sys.exit(0 if sustained(float(args[1]), args[2]) else 1)
    elif args[0] == "--stages":
        stages(args[1], args[2])
    elif args[0] == "--repeats":
        repeats(args[1:])
    elif args[0] == "--cost":
        cost(args[1:])
    elif args[0] == "--guardrails":
        cost(args[1:], "guardrails", ("before", "defaults", "all", "buffered"))
    else:
        summary(args[0])
