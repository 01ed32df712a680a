"""The BENCHMARKS.md tables.

  python3 scripts/bench_report.py                 tables of the latest run (target/criterion)
  python3 scripts/bench_report.py --json LOG      that run's figures as JSON (LOG: the benches'
                                                  output, for the figures they print)
  python3 scripts/bench_report.py --ranges DIR    every figure as min–max over DIR/run-*.json
  python3 scripts/bench_report.py --compare DIR   before (DIR/old*.json) and after (DIR/new*.json),
                                                  each figure as min–max over its runs
"""
import json
import pathlib
import platform
import re
import subprocess
import sys

import os

# criterion's output: the repository's target/criterion, or CRITERION_DIR (another checkout's).
ROOT = pathlib.Path(os.environ.get("CRITERION_DIR") or pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion")

# (group, bench) pairs reported as means per operation.
MEANS = [
    ("issuance", "floor"), ("issuance", "in_memory_end_to_end"),
    ("operations", "send"), ("operations", "check"),
    ("operations", "register"), ("operations", "verify"), ("operations", "login"),
    ("history", "0"), ("history", "1000"), ("history", "10000"),
    ("unrelated_events", "0"), ("unrelated_events", "1000000"),
    ("concurrency", "8_tasks_8_users"), ("concurrency", "8_tasks_1_users"),
    ("operations", "sync_unchanged_user"),
    ("postgres", "raw_insert_commit"), ("postgres", "issuance_end_to_end"),
    ("postgres", "check_end_to_end"), ("postgres", "enroll_end_to_end"),
    ("postgres", "login_end_to_end"), ("postgres", "sync_unchanged_user"),
    ("cold_start", "10000"), ("cold_start", "1000000"),
] + [
    # criterion names a function id's "/" "_" on disk
    ("pg_pools", f"{bench}_{pool}")
    for bench in ("issuance_after_3000", "long_stream_read_tail", "long_stream_read_page")
    for pool in ("store_pool", "default_deadpool", "default_sqlx", "sqlx_without_ping")
]
# (name, numerator, denominator, target): ratios of means taken in the same run.
RATIOS = [
    ("in-memory issuance / floor", "issuance/in_memory_end_to_end", "issuance/floor", 3.0),
    ("10,000 earlier links / fresh user", "history/10000", "history/0", 1.5),
    ("1,000,000 unrelated events / empty store", "unrelated_events/1000000", "unrelated_events/0", 1.2),
    ("PostgreSQL issuance / raw INSERT+COMMIT", "postgres/issuance_end_to_end", "postgres/raw_insert_commit", 3.0),
    ("8 tasks on 1 user / on 8 users", "concurrency/8_tasks_1_users", "concurrency/8_tasks_8_users", None),
]
TASKS = ("1", "4", "16", "64")


def mean_ns(group, bench):
    path = ROOT / group / bench / "new" / "estimates.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["mean"]["point_estimate"]


def only(pattern):
    found = sorted(ROOT.glob(pattern + "/new/estimates.json"))
    if not found:
        return None, None
    path = found[-1]
    name = path.parent.parent.relative_to(ROOT).as_posix()
    return name, json.loads(path.read_text())["mean"]["point_estimate"]


def figures(log_text=""):
    """Every figure of the latest run: means (ns), read-side throughputs, PostgreSQL throughput
    by task count, and what the benches print (interleaved ratios, cold starts)."""
    out = {}
    for group, bench in MEANS:
        ns = mean_ns(group, bench)
        if ns is not None:
            out[f"{group}/{bench}"] = ns
    for pattern in ("feed/read_feed_*", "feed/raw_select_*", "catch_up/in_memory/*", "catch_up/postgres/*"):
        name, ns = only(pattern)
        if name:
            events = int(re.split(r"[_/]", name)[-1])
            out[f"events_per_s/{name}"] = events / (ns / 1e9)
    for tasks in TASKS:
        for kind in ("issuance", "raw_txn", "raw_autocommit", "sqlx_issuance"):
            ns = mean_ns("pg_throughput", f"{kind}/{tasks}")
            if ns is not None:
                out[f"ops_per_s/{kind}/{tasks}"] = 1e9 / ns
    for m in re.finditer(r"pg_interleaved/(\d+): issuance / raw transaction ([\d.]+)×, issuance / raw autocommit ([\d.]+)×", log_text):
        out[f"interleaved_vs_txn/{m[1]}"] = float(m[2])
        out[f"interleaved_vs_autocommit/{m[1]}"] = float(m[3])
    # Both stores interleaved, on a quiet server and on a crowded one (256 backends).
    for label in ("pg_interleaved", "pg_crowded"):
        for m in re.finditer(label + r"/(\d+): issuance / raw transaction ([\d.]+)×.*raw transaction (\d+) ops/s", log_text):
            out[f"{label}_vs_txn/{m[1]}"] = float(m[2])
            out[f"{label}_raw_txn_ops/{m[1]}"] = float(m[3])
        for m in re.finditer(label + r"/(\d+): sqlx issuance / raw transaction ([\d.]+)×", log_text):
            out[f"{label}_sqlx_vs_txn/{m[1]}"] = float(m[2])
    for m in re.finditer(r"cold_start/(\d+): first call ever \(no snapshot\) ([\d.]+) ms, peak extra RSS (\d+) kB; a cold process with the snapshot ([\d.]+) ms, peak extra RSS (\d+) kB", log_text):
        out[f"first_call_ms/{m[1]}"] = float(m[2])
        out[f"first_call_kb/{m[1]}"] = float(m[3])
        out[f"snapshot_call_ms/{m[1]}"] = float(m[4])
    for m in re.finditer(r"round trips (\w+) (\w+): (\d+)", log_text):
        out[f"round_trips/{m[1]}/{m[2]}"] = float(m[3])
    for name, num, den, _ in RATIOS:
        if num in out and den in out:
            out[f"ratio/{name}"] = out[num] / out[den]
    for tasks in TASKS:
        issuance = out.get(f"ops_per_s/issuance/{tasks}")
        txn = out.get(f"ops_per_s/raw_txn/{tasks}")
        auto = out.get(f"ops_per_s/raw_autocommit/{tasks}")
        if issuance and txn and auto:
            out[f"vs_txn/{tasks}"] = issuance / txn
            out[f"vs_autocommit/{tasks}"] = issuance / auto
        sqlx = out.get(f"ops_per_s/sqlx_issuance/{tasks}")
        if sqlx and txn:
            out[f"sqlx_vs_txn/{tasks}"] = sqlx / txn
    return out


def fmt_ns(ns):
    return f"{ns / 1000:.2f} µs" if ns < 1_000_000 else f"{ns / 1_000_000:.2f} ms"


def fmt_value(key, v):
    if "_raw_txn_ops/" in key:
        return f"{v:,.0f}/s"
    if key.startswith(("ratio/", "vs_", "sqlx_vs", "interleaved", "pg_interleaved", "pg_crowded")):
        return f"{v:.2f}×"
    if key.startswith(("ops_per_s/", "events_per_s/")):
        return f"{v:,.0f}"
    if key.endswith("_ms") or "_ms/" in key:
        return f"{v:,.1f} ms"
    if "_kb/" in key:
        return f"{v / 1024:.1f} MB"
    if key.startswith("round_trips/"):
        return f"{v:.0f}"
    return fmt_ns(v)


def cell(key, values):
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    lo, hi = min(values), max(values)
    a, b = fmt_value(key, lo), fmt_value(key, hi)
    return a if a == b else f"{a} – {b}"


def tables(runs):
    """Markdown tables: each figure as the range over `runs` (a list of figure dicts)."""
    get = lambda key: [r.get(key) for r in runs]
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    print(f"Machine: {cpu}, {cores} cores, {platform.system()} {platform.release()}; {len(runs)} run(s)\n")
    print("| bench | mean per operation |")
    print("|---|---|")
    for group, bench in MEANS:
        key = f"{group}/{bench}"
        if any(v is not None for v in get(key)):
            print(f"| `{key}` | {cell(key, get(key))} |")
    print("\n| ratio (each run's means) | value | target | met in every run |")
    print("|---|---|---|---|")
    for name, _, _, target in RATIOS:
        key = f"ratio/{name}"
        values = [v for v in get(key) if v is not None]
        if not values:
            continue
        met = "—" if target is None else ("yes" if max(values) <= target else "**no**")
        print(f"| {name} | {cell(key, values)} | {'≤ ' + str(target) + '×' if target else '—'} | {met} |")
    read = sorted({k for r in runs for k in r if k.startswith("events_per_s/")})
    if read:
        print("\n| read side | events/s |")
        print("|---|---|")
        for key in read:
            print(f"| `{key.split('/', 1)[1]}` | {cell(key, get(key))} |")
    rows = [t for t in TASKS if any(v is not None for v in get(f"vs_txn/{t}"))]
    if rows:
        print("\n| tasks | issuance ops/s | raw transaction ops/s | raw autocommit ops/s | issuance / transaction | issuance / autocommit | interleaved / transaction | interleaved / autocommit |")
        print("|---|---|---|---|---|---|---|---|")
        for t in rows:
            print(f"| {t} | {cell('ops_per_s/', get(f'ops_per_s/issuance/{t}'))} | {cell('ops_per_s/', get(f'ops_per_s/raw_txn/{t}'))} | "
                  f"{cell('ops_per_s/', get(f'ops_per_s/raw_autocommit/{t}'))} | {cell('vs_', get(f'vs_txn/{t}'))} | {cell('vs_', get(f'vs_autocommit/{t}'))} | "
                  f"{cell('interleaved', get(f'interleaved_vs_txn/{t}'))} | {cell('interleaved', get(f'interleaved_vs_autocommit/{t}'))} |")
    sqlx = [t for t in TASKS if any(v is not None for v in get(f"sqlx_vs_txn/{t}"))]
    if sqlx:
        print("\n| tasks | sqlx store issuance ops/s | sqlx issuance / transaction |")
        print("|---|---|---|")
        for t in sqlx:
            print(f"| {t} | {cell('ops_per_s/', get(f'ops_per_s/sqlx_issuance/{t}'))} | {cell('vs_', get(f'sqlx_vs_txn/{t}'))} |")
    both = [(label, t) for label in ("pg_interleaved", "pg_crowded") for t in TASKS
            if any(v is not None for v in get(f"{label}_vs_txn/{t}"))]
    if both:
        print("\n| interleaved, medians of 7 rounds | tasks | tokio-postgres store / raw transaction | sqlx store / raw transaction | raw transaction |")
        print("|---|---|---|---|---|")
        for label, t in both:
            print(f"| {label} | {t} | {cell('pg_interleaved', get(f'{label}_vs_txn/{t}'))} | "
                  f"{cell('pg_interleaved', get(f'{label}_sqlx_vs_txn/{t}'))} | {cell(f'{label}_raw_txn_ops/', get(f'{label}_raw_txn_ops/{t}'))} |")
    colds = sorted({k.split("/")[1] for r in runs for k in r if k.startswith("first_call_ms/")}, key=int)
    if colds:
        print("\n| user with N earlier events (PostgreSQL) | first call ever (no snapshot) | peak extra memory | a cold process with the snapshot |")
        print("|---|---|---|---|")
        for n in colds:
            print(f"| {int(n):,} | {cell(f'first_call_ms/{n}', get(f'first_call_ms/{n}'))} | {cell(f'first_call_kb/{n}', get(f'first_call_kb/{n}'))} | {cell(f'snapshot_call_ms/{n}', get(f'snapshot_call_ms/{n}'))} |")


def compare(old, new):
    """One table: each figure before and after, as the range over each side's runs."""
    keys = sorted({k for r in old + new for k in r})
    print(f"before: {len(old)} run(s), after: {len(new)} run(s)\n")
    print("| figure | before | after |")
    print("|---|---|---|")
    for key in keys:
        before = cell(key, [r.get(key) for r in old])
        after = cell(key, [r.get(key) for r in new])
        print(f"| `{key}` | {before} | {after} |")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--json":
        log = pathlib.Path(sys.argv[2]).read_text() if len(sys.argv) > 2 else ""
        print(json.dumps(figures(log), indent=1, sort_keys=True))
    elif len(sys.argv) >= 3 and sys.argv[1] == "--compare":
        d = pathlib.Path(sys.argv[2])
        load = lambda side: [json.loads(p.read_text()) for p in sorted(d.glob(f"{side}*.json"))]
        compare(load("old"), load("new"))
    elif len(sys.argv) >= 3 and sys.argv[1] == "--ranges":
        runs = [json.loads(p.read_text()) for p in sorted(pathlib.Path(sys.argv[2]).glob("run-*.json"))]
        tables(runs)
    else:
        tables([figures()])
