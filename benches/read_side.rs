//! Read-side benchmarks. Ratios that matter (same run):
//! - `feed/read_feed_10000` vs `feed/raw_select_10000`: the global feed against a plain
//!   keyset `SELECT` of the same rows, both in pages of 1,000 (PostgreSQL);
//! - `catch_up/*`: the shipped read models projecting 10,000 events (events/s);
//! - `cold_start/*`: a process's first call for a user with 10,000 or 1,000,000 earlier events,
//!   from the snapshot. Printed once per size, outside criterion: the first call ever (no
//!   snapshot yet: the whole stream folded a page at a time) and the peak extra memory (RSS
//!   high-water mark, reset before each call).
//!
//! `python3 scripts/bench_report.py` prints the tables of BENCHMARKS.md from the results.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use passkey_links::prelude::*;
use passkey_links::read::{ProjectionRunner, ReadModels};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn config() -> Config {
    Config::new(LinkConfig::new(
        BaseUrl::parse("https://id.example.com").unwrap(),
    ))
    .with_policy(Policy::default().with_rate_limit(None))
}

fn service<S: EventStore>(store: S) -> PasskeyLinks<S, RecordingNotifier, StaticGrants> {
    PasskeyLinks::new(
        store,
        RecordingNotifier::new(),
        StaticGrants::new(),
        config(),
    )
}

/// A new org.
async fn new_org<S: EventStore>(
    service: &PasskeyLinks<S, RecordingNotifier, StaticGrants>,
) -> String {
    service
        .add_org(
            &Caller::System,
            AddOrgRequest {
                name: "ACME".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .org_id
}

/// A verified human named `name` in `org`, as a self-service caller.
async fn new_user<S: EventStore>(
    service: &PasskeyLinks<S, RecordingNotifier, StaticGrants>,
    org: &str,
    name: &str,
) -> Caller {
    let user = service
        .add_human_user(
            &Caller::System,
            Some(org),
            AddHumanUserRequest {
                user_name: name.into(),
                display_name: name.to_uppercase(),
                email: format!("{name}@example.com"),
                is_email_verified: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .user_id;
    Caller::user(UserId::new(user).unwrap(), OrgId::new(org).unwrap())
}

/// An org and `users` users, each given `links` links: 3 events per link.
async fn history<S: EventStore>(store: S, users: usize, links: usize) {
    let service = service(store);
    let org = new_org(&service).await;
    for i in 0..users {
        let me = new_user(&service, &org, &format!("user{i}")).await;
        for _ in 0..links {
            service.add_my_passwordless_link(&me).await.unwrap();
        }
    }
}

/// Projecting 10,000 events into the read models, from an empty checkpoint each time.
fn catch_up_in_memory(c: &mut Criterion) {
    let rt = runtime();
    let store = InMemoryStore::new();
    rt.block_on(history(store.clone(), 100, 50));
    let events = store.len() as u64;
    let mut group = c.benchmark_group("catch_up");
    group.throughput(Throughput::Elements(events));
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("in_memory", events), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let store = store.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // A fresh read-model store per run: the events copied over untimed.
                    let target = InMemoryStore::new();
                    let runner =
                        ProjectionRunner::new(&store, ReadModels::new(&target)).batch_size(1_000);
                    let start = Instant::now();
                    runner.catch_up().await.unwrap();
                    total += start.elapsed();
                }
                total
            }
        })
    });
    group.finish();
}

#[cfg(feature = "postgres")]
mod support;

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use passkey_links::read::ProjectionStore;
    use passkey_links::store::postgres::PostgresStore;

    pub fn store(rt: &Runtime, name: &str) -> Option<PostgresStore> {
        let Ok(url) = std::env::var("PASSKEY_LINKS_DATABASE_URL") else {
            eprintln!("skipped: postgres benches (no PASSKEY_LINKS_DATABASE_URL)");
            return None;
        };
        let schema = format!("bench_{name}_{}", chrono::Utc::now().timestamp_micros());
        let store = PostgresStore::connect(&url, 4)
            .unwrap()
            .in_schema(&schema)
            .unwrap();
        rt.block_on(store.migrate()).unwrap();
        Some(store)
    }

    /// The global feed against a plain keyset SELECT of the same rows.
    pub fn feed(c: &mut Criterion) {
        let rt = runtime();
        let Some(store) = store(&rt, "feed") else {
            return;
        };
        rt.block_on(history(store.clone(), 100, 33));
        let events = rt.block_on(store.read_feed(0, 10_000)).unwrap().len() as u64;
        let mut group = c.benchmark_group("feed");
        group.throughput(Throughput::Elements(events));
        group.sample_size(20);
        group.bench_function(format!("read_feed_{events}"), |b| {
            b.to_async(&rt).iter(|| async {
                let mut after = 0;
                loop {
                    let page = store.read_feed(after, 1_000).await.unwrap();
                    match page.last() {
                        Some(last) => after = last.feed_position,
                        None => break,
                    }
                }
            })
        });
        group.bench_function(format!("raw_select_{events}"), |b| {
            b.to_async(&rt).iter(|| async {
                let client = store.pool().get().await.unwrap();
                let sql = format!(
                    "SELECT feed_position, stream_type, stream_id, version, position, event_type,
                            schema_version, payload, recorded_at
                     FROM {} WHERE feed_position > $1 ORDER BY feed_position LIMIT 1000",
                    store.table()
                );
                let statement = client.prepare_cached(&sql).await.unwrap();
                let mut after = 0i64;
                loop {
                    let rows = client.query(&statement, &[&after]).await.unwrap();
                    match rows.last() {
                        Some(last) => after = last.get(0),
                        None => break,
                    }
                    // Decode what the feed decodes, for a like-for-like comparison.
                    for row in &rows {
                        let _: serde_json::Value = row.get(7);
                        let _: chrono::DateTime<chrono::Utc> = row.get(8);
                    }
                }
            })
        });
        group.finish();
    }

    /// The read models catching up with 10,000 events, from an empty checkpoint each time.
    pub fn catch_up(c: &mut Criterion) {
        let rt = runtime();
        let Some(store) = store(&rt, "catch_up") else {
            return;
        };
        rt.block_on(history(store.clone(), 100, 33));
        let events = rt.block_on(store.read_feed(0, 100_000)).unwrap().len() as u64;
        let schema = format!("\"{}\"", store.schema().unwrap());
        let mut group = c.benchmark_group("catch_up");
        group.throughput(Throughput::Elements(events));
        group.sample_size(10);
        group.bench_function(BenchmarkId::new("postgres", events), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (store, schema) = (store.clone(), schema.clone());
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let client = store.pool().get().await.unwrap();
                        client
                            .batch_execute(&format!(
                                "TRUNCATE {schema}.passkey_links_checkpoints, {schema}.passkey_links_owners,
                                          {schema}.passkey_links_audit, {schema}.passkey_links_links,
                                          {schema}.passkey_links_link_failures"
                            ))
                            .await
                            .unwrap();
                        drop(client);
                        let runner = ProjectionRunner::new(&store, ReadModels::new(&store))
                            .batch_size(1_000);
                        let start = Instant::now();
                        runner.catch_up().await.unwrap();
                        total += start.elapsed();
                    }
                    let at = store.checkpoint(passkey_links::read::READ_MODELS).await;
                    assert!(at.unwrap() > 0, "the read models caught up");
                    total
                }
            })
        });
        group.finish();
    }

    /// Peak resident memory so far (kB), after resetting the high-water mark to now.
    fn reset_peak() {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }

    fn peak_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|line| line.starts_with("VmHWM:"))
                    .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    fn rss_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|line| line.starts_with("VmRSS:"))
                    .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// A user whose stream holds `earlier` events after their creation (inserted in bulk).
    async fn long_user(store: &PostgresStore, earlier: i64) -> Caller {
        let service = service(store.clone());
        let org = new_org(&service).await;
        let me = new_user(&service, &org, "long").await;
        let Caller::User(principal) = &me else {
            unreachable!()
        };
        let user = principal.user_id.as_str().to_owned();
        crate::support::bulk_user_events(
            store,
            &user,
            earlier + 1,
            "'user.human.passwordless.link.issued'",
            "jsonb_build_object('codeId', 'bulk-' || g, 'issuedAt', '2026-01-01T00:00:00Z', \
             'supersedesEarlier', true)",
        )
        .await;
        me
    }

    /// What one measuring process was asked to do.
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Measure {
        config: String,
        schema: String,
        user: String,
        org: String,
    }

    /// In a fresh process (so that the allocator holds no memory from earlier work): a warm-up
    /// call for another user, then the first call for the long user, timed, with the peak RSS
    /// it added. Prints `MEASURED <ms> <kB>`.
    pub fn measure(spec: &str) {
        let measure: Measure = serde_json::from_str(spec).unwrap();
        let rt = runtime();
        let store = PostgresStore::connect(&measure.config, 4)
            .unwrap()
            .in_schema(&measure.schema)
            .unwrap();
        let service = PasskeyLinks::new(
            store,
            RecordingNotifier::new(),
            StaticGrants::new(),
            config().with_deadline(None),
        );
        let org = OrgId::new(&measure.org).unwrap();
        let warm = Caller::user(UserId::new("warm-up").unwrap(), org.clone());
        let _ = rt.block_on(service.add_my_passwordless_link(&warm));
        let me = Caller::user(UserId::new(&measure.user).unwrap(), org);
        let before = rss_kb();
        reset_peak();
        let start = Instant::now();
        rt.block_on(service.add_my_passwordless_link(&me)).unwrap();
        let elapsed = start.elapsed();
        let extra = peak_kb().saturating_sub(before);
        println!("MEASURED {:.3} {extra}", elapsed.as_secs_f64() * 1000.0);
    }

    fn measured(spec: &Measure) -> (f64, u64) {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .env(
                "PASSKEY_LINKS_MEASURE",
                serde_json::to_string(spec).unwrap(),
            )
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find_map(|line| line.strip_prefix("MEASURED "))
            .unwrap_or_else(|| {
                panic!(
                    "no measurement: {stdout} {}",
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        let mut parts = line.split_whitespace();
        let ms = parts.next().unwrap().parse().unwrap();
        let kb = parts.next().unwrap().parse().unwrap();
        (ms, kb)
    }

    /// A process's first call for a user with a long history: criterion over processes with a
    /// snapshot stored; the first call ever (no snapshot) and a cold process's first call with
    /// the snapshot, each in a fresh process with its peak extra memory, printed once.
    pub fn cold_start(c: &mut Criterion) {
        let rt = runtime();
        let mut group = c.benchmark_group("cold_start");
        group.sample_size(20);
        for earlier in [10_000i64, 1_000_000] {
            let Some(store) = store(&rt, "cold") else {
                return;
            };
            let me = rt.block_on(long_user(&store, earlier));
            let Caller::User(principal) = &me else {
                unreachable!()
            };
            let spec = Measure {
                config: std::env::var("PASSKEY_LINKS_DATABASE_URL").unwrap(),
                schema: store.schema().unwrap().to_owned(),
                user: principal.user_id.as_str().to_owned(),
                org: principal.org_id.as_str().to_owned(),
            };
            let (first_ms, first_kb) = measured(&spec);
            let (snap_ms, snap_kb) = measured(&spec);
            eprintln!(
                "cold_start/{earlier}: first call ever (no snapshot) {first_ms:.1} ms, peak extra \
                 RSS {first_kb} kB; a cold process with the snapshot {snap_ms:.2} ms, peak extra \
                 RSS {snap_kb} kB"
            );
            group.bench_function(BenchmarkId::from_parameter(earlier), |b| {
                b.to_async(&rt).iter(|| async {
                    service(store.clone())
                        .add_my_passwordless_link(&me)
                        .await
                        .unwrap()
                })
            });
        }
        group.finish();
    }
}

#[cfg(feature = "postgres")]
fn postgres(c: &mut Criterion) {
    pg::feed(c);
    pg::catch_up(c);
    pg::cold_start(c);
}

#[cfg(not(feature = "postgres"))]
fn postgres(_: &mut Criterion) {
    eprintln!("skipped: postgres benches (build with --features postgres)");
}

fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = catch_up_in_memory, postgres
}

fn main() {
    // The cold-start bench re-runs this binary to measure one call in a fresh process.
    #[cfg(feature = "postgres")]
    if let Ok(spec) = std::env::var("PASSKEY_LINKS_MEASURE") {
        pg::measure(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
