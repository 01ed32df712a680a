"""Prints the BENCHMARKS.md table from criterion's latest results (target/criterion)."""
import json
import pathlib
import platform
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"


def mean_ns(group, bench):
    path = ROOT / group / bench / "new" / "estimates.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["mean"]["point_estimate"]


def fmt(ns):
    if ns is None:
        return "—"
    return f"{ns / 1000:.2f} µs" if ns < 1_000_000 else f"{ns / 1_000_000:.2f} ms"


rows = [
    ("issuance", "floor"), ("issuance", "in_memory_end_to_end"),
    ("operations", "send"), ("operations", "check"),
    ("operations", "register"), ("operations", "verify"),
    ("history", "0"), ("history", "1000"), ("history", "10000"),
    ("unrelated_events", "0"), ("unrelated_events", "1000000"),
    ("concurrency", "8_tasks_8_users"), ("concurrency", "8_tasks_1_users"),
    ("postgres", "raw_insert_commit"), ("postgres", "issuance_end_to_end"),
    ("postgres", "check_end_to_end"), ("postgres", "enroll_end_to_end"),
]
ratios = [
    ("in-memory issuance / floor", ("issuance", "in_memory_end_to_end"), ("issuance", "floor"), 3.0),
    ("10,000 earlier links / fresh user", ("history", "10000"), ("history", "0"), 1.5),
    ("1,000,000 unrelated events / empty store", ("unrelated_events", "1000000"), ("unrelated_events", "0"), 1.2),
    ("PostgreSQL issuance / raw INSERT+COMMIT", ("postgres", "issuance_end_to_end"), ("postgres", "raw_insert_commit"), 3.0),
    ("8 tasks on 1 user / on 8 users", ("concurrency", "8_tasks_1_users"), ("concurrency", "8_tasks_8_users"), None),
]

try:
    cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
except (OSError, StopIteration):
    cpu = platform.processor() or "unknown CPU"
cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
print(f"Machine: {cpu}, {cores} cores, {platform.system()} {platform.release()}\n")
print("| bench | mean per operation |")
print("|---|---|")
for group, bench in rows:
    print(f"| `{group}/{bench}` | {fmt(mean_ns(group, bench))} |")
print("\n| ratio (same run) | value | target | met |")
print("|---|---|---|---|")
for name, num, den, target in ratios:
    a, b = mean_ns(*num), mean_ns(*den)
    if a is None or b is None:
        print(f"| {name} | — | {target or '—'} | not run |")
        continue
    value = a / b
    met = "—" if target is None else ("yes" if value <= target else "**no**")
    print(f"| {name} | {value:.2f}× | {'≤ ' + str(target) + '×' if target else '—'} | {met} |")


# The read side (benches/read_side.rs): bench names carry their event counts.
def only(pattern):
    found = sorted(ROOT.glob(pattern + "/new/estimates.json"))
    if not found:
        return None, None
    path = found[-1]
    name = path.parent.parent.relative_to(ROOT).as_posix()
    return name, json.loads(path.read_text())["mean"]["point_estimate"]


def per_second(name, ns):
    events = int(name.rsplit("_", 1)[-1].rsplit("/", 1)[-1])
    return events / (ns / 1e9)


print("\n| read side | mean | events/s |")
print("|---|---|---|")
feed_name, feed = only("feed/read_feed_*")
raw_name, raw = only("feed/raw_select_*")
for name, ns in [(feed_name, feed), (raw_name, raw), *[only(p) for p in ("catch_up/in_memory/*", "catch_up/postgres/*")]]:
    if name:
        print(f"| `{name}` | {fmt(ns)} | {per_second(name, ns):,.0f} |")
for size in ("10000", "1000000"):
    ns = mean_ns("cold_start", size)
    if ns is not None:
        print(f"| `cold_start/{size}` (a cold process, snapshot stored) | {fmt(ns)} | — |")
if feed and raw:
    print(f"\nFeed read throughput / raw SELECT of the same rows: {raw / feed:.2f}× (same run)")


# Throughput on PostgreSQL by task count (benches/issuance.rs, `pg_throughput`).
rows = []
for tasks in ("1", "4", "16", "64"):
    issuance = mean_ns("pg_throughput", f"issuance/{tasks}")
    txn = mean_ns("pg_throughput", f"raw_txn/{tasks}")
    auto = mean_ns("pg_throughput", f"raw_autocommit/{tasks}")
    if None in (issuance, txn, auto):
        continue
    rows.append((tasks, issuance, txn, auto))
if rows:
    print("\n| tasks | issuance ops/s | raw transaction ops/s | raw autocommit ops/s | issuance / transaction | issuance / autocommit |")
    print("|---|---|---|---|---|---|")
    for tasks, issuance, txn, auto in rows:
        ops = lambda ns: 1e9 / ns
        print(f"| {tasks} | {ops(issuance):,.0f} | {ops(txn):,.0f} | {ops(auto):,.0f} | {txn / issuance:.2f}× | {auto / issuance:.2f}× |")

# The same comparison interleaved (benches/issuance.rs prints it after `pg_throughput`).
interleaved = ROOT / "pg_interleaved.json"
if interleaved.exists():
    print("\n| tasks | issuance / transaction (interleaved, median) | issuance / autocommit (interleaved, median) |")
    print("|---|---|---|")
    for row in json.loads(interleaved.read_text()):
        print(f"| {row['tasks']} | {row['vs_txn']:.2f}× | {row['vs_autocommit']:.2f}× |")
