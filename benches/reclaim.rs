//! Benchmarks of the targets in docs/benchmarks.md.
//!
//! (a) Deciding 100,000 allocations: `plan::users_needing_details` plus `plan::decide_owned` (as `run::execute`
//!     calls them; `plan::decide` for reference), timed in thread CPU time, with the peak heap measured by a
//!     counting global allocator (switched off while timing). The input is a simulated site read once through
//!     the product's QRS client: every allocation, the records of the users the engine asks for, the counts.
//! (b) A run against the bundled QRS simulator (5 ms of latency per request, 20,000 users, 2,000 reclaims): the
//!     product's own `run::execute`, deleting through selections (the default) and one seat a request, and as a
//!     dry run (the reads alone), against the approach of the original script and of peers, built from the same
//!     client's calls made one request at a time (every allocation listed, each user fetched alone, one DELETE at
//!     a time), each on a simulator started from the same seed. After the bulk run, `restore` gives back every
//!     seat it took, measured apart.
//!
//! The policy of (a) reclaims at most `MAX_RECLAIMS_PER_RUN` (2,000) seats, the most a policy may: the engine still
//! judges every allocation, and defers the candidates past the cap to the next run.
//!
//! `cargo bench --bench reclaim` takes a few minutes, most of it the sequential client; `-- --quick` is a smoke
//! run (smaller sites, 200 reclaims, fewer iterations). The measurements go to stdout as JSON.
//!
//! `cargo test` runs this target too (`test = true` in Cargo.toml), built in the test profile: started without
//! `--bench`, it runs a smaller smoke still (a few thousand users, no timing asserted) and fails if either part
//! fails, so that the benchmark cannot stop working unnoticed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::error::Error;
use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use jiff::{SignedDuration, Timestamp};
use qlik_license_reclaimer::credentials::Credentials;
use qlik_license_reclaimer::model::{AccessType, Allocation, UserDetails};
use qlik_license_reclaimer::plan::{self, Plan, PlanCounts, Rules};
use qlik_license_reclaimer::policy::{self, LicenseCleanupPolicySpec, RunResult};
use qlik_license_reclaimer::qrs::{Allocations, QrsClient};
use qlik_license_reclaimer::run::{self, RunContext};
use qrs_simulator::{Simulator, SimulatorConfig};
use serde::Serialize;
use serde_json::json;

type BoxError = Box<dyn Error + Send + Sync>;

#[path = "reclaim/measure.rs"]
mod measure;

use measure::{COUNTING, HeapUse, heap_now, median, mib, ms, process_cpu, thread_cpu};

// ----- Options -------------------------------------------------------------------------------------------------

#[derive(Parser)]
#[command(about = "Benchmarks of the decision engine and of a run against the QRS simulator")]
struct Options {
    /// A smaller site, 200 reclaims and fewer iterations: a smoke run.
    #[arg(long)]
    quick: bool,
    /// Only (a), the decision engine.
    #[arg(long, conflicts_with = "run_only")]
    decide_only: bool,
    /// Only (b), the run against the simulator.
    #[arg(long)]
    run_only: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Users of the simulated site (a); about 94% of them hold a per-user seat.
    #[arg(long)]
    decide_users: Option<usize>,
    /// Users of the simulated site (b).
    #[arg(long)]
    users: Option<usize>,
    /// maxReclaimsPerRun of the run (b).
    #[arg(long)]
    reclaims: Option<u32>,
    #[arg(long, default_value_t = 8)]
    concurrency: u32,
    /// Timed iterations of (a).
    #[arg(long)]
    iterations: Option<usize>,
    /// Latency the simulator adds to every request in (b), in milliseconds.
    #[arg(long, default_value_t = 5)]
    latency_ms: u64,
    /// Passed by `cargo bench`; nothing to do with it.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Options {
    fn pick<T>(&self, full: T, quick: T, given: Option<T>) -> T {
        given.unwrap_or(if self.quick { quick } else { full })
    }
}

// ----- The site, through the product's client ------------------------------------------------------------------

/// The policies of both parts: professional and analyzer seats after 30 days, user passes after 60, 14 days of
/// grace, the exclusions of a real site (service accounts, a tag, an exemption property, an any-value property,
/// two roles).
fn policy(simulator: &Simulator, reclaims: u32, concurrency: u32) -> LicenseCleanupPolicySpec {
    let yaml = format!(
        r#"
schedule: "0 3 * * *"
dryRun: false
site:
  repositoryUrl: {url}
  credentialsSecretRef: {{name: qlik-client-certificate}}
  tls: {{serverName: {server}}}
  concurrency: {concurrency}
accessTypes:
  professional: {{inactiveDays: 30}}
  analyzer: {{inactiveDays: 30}}
  user: {{inactiveDays: 60}}
neverUsedGraceDays: 14
exclude:
  users: ['INTERNAL\sa_*', 'CORP\svc_*']
  tags: [VIP]
  customProperties: [{{name: LicenseCleanup, values: [Exempt]}}, {{name: LegalHold}}]
  roles: [RootAdmin, AuditAdmin]
limits: {{maxReclaimsPerRun: {reclaims}, maxReclaimPercent: 100}}
"#,
        url = simulator.repository_url(),
        server = simulator.pki().server_name,
    );
    serde_yaml::from_str(&yaml).expect("the benchmark policy parses")
}

async fn start_simulator(
    seed: u64,
    users: usize,
    latency: Duration,
) -> Result<Simulator, BoxError> {
    eprintln!("starting the simulator: {} users, seed {seed}", users);
    let config = SimulatorConfig {
        seed,
        users,
        latency,
        ..SimulatorConfig::default()
    };
    Ok(Simulator::start(config).await?)
}

async fn connect(
    simulator: &Simulator,
    spec: &LicenseCleanupPolicySpec,
) -> Result<QrsClient, BoxError> {
    let credentials = Credentials::from_entries(&simulator.pki().secret_entries())?;
    let policy = policy::validate(spec, &Default::default())?;
    Ok(QrsClient::connect(&policy.connection, &credentials, None).await?)
}

/// What the engine decides on: every allocation of the policy's access types, the records of the users it asks
/// for, and the site's count per access type.
#[derive(Default)]
struct Site {
    allocations: Vec<Allocation>,
    users: HashMap<String, UserDetails>,
    totals: BTreeMap<AccessType, u64>,
}

/// Every allocation of the policy's types: a cutoff in the future lists them all, as a script that reads whole
/// collections does.
async fn read_site(
    client: &QrsClient,
    rules: &Rules,
    now: Timestamp,
    one_user_a_request: bool,
) -> Result<Site, BoxError> {
    let mut site = Site::default();
    let everything = now + SignedDuration::from_hours(24);
    for access_type in rules.access_types() {
        let counted = client.count(access_type).await?;
        site.totals.insert(access_type, counted);
        let listed = client
            .allocations(
                access_type,
                &Allocations::UsedBy(everything),
                counted,
                usize::MAX,
            )
            .await?;
        site.allocations.extend(listed);
    }
    let needed: BTreeSet<String> = if one_user_a_request {
        site.allocations.iter().map(|a| a.user_id.clone()).collect()
    } else {
        plan::users_needing_details(rules, &site.allocations, now)
            .into_iter()
            .collect()
    };
    let needed: Vec<String> = needed.into_iter().filter(|id| !id.is_empty()).collect();
    // The product's client batches 50 users a request; the sequential approach asks for each alone.
    let batch = if one_user_a_request { 1 } else { usize::MAX };
    for ids in needed.chunks(batch) {
        site.users.extend(client.users(ids).await?);
    }
    Ok(site)
}

// ----- (a) Deciding 100,000 allocations ------------------------------------------------------------------------

/// Thread CPU of `users_needing_details` then `decider`, per iteration, with the input made before the clock starts.
fn time_decide<I: AsRef<[Allocation]>>(
    iterations: usize,
    rules: &Rules,
    now: Timestamp,
    mut input: impl FnMut() -> I,
    mut decider: impl FnMut(I) -> Plan,
) -> Vec<Duration> {
    (0..iterations)
        .map(|_| {
            let input = input();
            let start = thread_cpu();
            black_box(plan::users_needing_details(
                rules,
                black_box(input.as_ref()),
                now,
            ));
            black_box(decider(black_box(input)));
            thread_cpu() - start
        })
        .collect()
}

/// The simulated site of (a), read once through the product's client on runtime threads that are gone before the
/// clock starts.
fn load_decide_site(
    options: &Options,
    site_users: usize,
) -> Result<(Rules, Timestamp, Site), BoxError> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let simulator = start_simulator(options.seed, site_users, Duration::ZERO).await?;
        let spec = policy(&simulator, policy::MAX_RECLAIMS_PER_RUN, 8);
        let rules = policy::rules(&spec)?;
        eprintln!("(a) reading every allocation and the users the engine asks for");
        let client = connect(&simulator, &spec).await?;
        let now = simulator.now();
        let site = read_site(&client, &rules, now, false).await?;
        client.close().await;
        simulator.shutdown().await;
        Ok((rules, now, site))
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DecideMeasure {
    site_users: usize,
    allocations: usize,
    user_records: usize,
    plan: PlanCounts,
    breaker: Option<String>,
    iterations: usize,
    /// `users_needing_details` + `decide_owned`, the path `run::execute` takes.
    cpu_median_ms: f64,
    heap_peak_mib: f64,
    heap_inputs_mib: f64,
    /// `decide`, which copies the allocations into the plan, for reference.
    copying_cpu_median_ms: f64,
    copying_heap_peak_mib: f64,
    cpu_under_100ms: bool,
    heap_under_100mib: bool,
}

fn bench_decide(options: &Options) -> Result<DecideMeasure, BoxError> {
    let site_users = options.pick(106_500, 10_000, options.decide_users);
    let iterations = options.pick(15, 3, options.iterations);
    let (rules, now, site) = load_decide_site(options, site_users)?;
    let (allocations, users, totals) = (site.allocations, site.users, site.totals);
    let sample = plan::decide(&rules, &allocations, &users, &totals, now);
    let plan = sample.totals();
    let breaker = sample.breaker.as_ref().map(ToString::to_string);
    drop(sample);

    eprintln!("(a) measuring the heap of users_needing_details + decide_owned / decide");
    let copying_heap = HeapUse::of(|| {
        black_box(plan::users_needing_details(&rules, &allocations, now));
        black_box(plan::decide(&rules, &allocations, &users, &totals, now));
    });
    // `decide_owned` consumes its copy; as for a caller that owns its only copy, the benchmark's own is not counted.
    let before_copy = heap_now();
    let input = allocations.clone();
    let copy = heap_now() - before_copy;
    let owned_heap = HeapUse::of(|| {
        black_box(plan::users_needing_details(&rules, &input, now));
        black_box(plan::decide_owned(
            &rules,
            input,
            &known(&users),
            &totals,
            now,
        ));
    });
    COUNTING.store(false, Ordering::Relaxed);

    eprintln!("(a) timing users_needing_details + decide_owned / decide, {iterations} iterations");
    let mut copying = time_decide(
        iterations,
        &rules,
        now,
        || allocations.as_slice(),
        |input| plan::decide(&rules, input, &users, &totals, now),
    );
    let mut owned = time_decide(
        iterations,
        &rules,
        now,
        || allocations.clone(),
        |input| plan::decide_owned(&rules, input, &known(&users), &totals, now),
    );
    let (cpu, heap_peak) = (median(&mut owned), owned_heap.peak - copy);
    Ok(DecideMeasure {
        site_users,
        allocations: allocations.len(),
        user_records: users.len(),
        plan,
        breaker,
        iterations,
        cpu_median_ms: ms(cpu),
        heap_peak_mib: mib(heap_peak),
        heap_inputs_mib: mib(owned_heap.before - copy),
        copying_cpu_median_ms: ms(median(&mut copying)),
        copying_heap_peak_mib: mib(copying_heap.peak),
        cpu_under_100ms: cpu < Duration::from_millis(100),
        heap_under_100mib: heap_peak < 100 * 1024 * 1024,
    })
}

// ----- (b) Against the simulator -------------------------------------------------------------------------------

/// What one client did against one simulator.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunMeasure {
    wall_seconds: f64,
    process_cpu_seconds: f64,
    /// Requests by `METHOD endpoint`, GUIDs replaced by `{id}`.
    requests_by_endpoint: BTreeMap<String, u64>,
    requests: usize,
    /// Allocation ids the simulator recorded as deleted.
    #[serde(skip)]
    deleted: BTreeSet<String>,
    seats_deleted: usize,
}

impl RunMeasure {
    fn from_simulator(simulator: &Simulator, wall: Duration, process_cpu: Duration) -> RunMeasure {
        let recorded = simulator.requests();
        let mut requests_by_endpoint = BTreeMap::new();
        for r in &recorded {
            let endpoint: Vec<&str> = r
                .path
                .split('/')
                .map(|s| {
                    if uuid::Uuid::try_parse(s).is_ok() {
                        "{id}"
                    } else {
                        s
                    }
                })
                .collect();
            *requests_by_endpoint
                .entry(format!("{} {}", r.method, endpoint.join("/")))
                .or_default() += 1;
        }
        let deleted: BTreeSet<String> = simulator
            .deletions()
            .iter()
            .map(|d| d.allocation_id.to_string())
            .collect();
        RunMeasure {
            wall_seconds: wall.as_secs_f64(),
            process_cpu_seconds: process_cpu.as_secs_f64(),
            requests_by_endpoint,
            requests: recorded.len(),
            seats_deleted: deleted.len(),
            deleted,
        }
    }
}

/// A simulator with the latency of (b) and the enforcing policy against it, its records cleared.
async fn start_run(
    options: &Options,
    users: usize,
    reclaims: u32,
    concurrency: u32,
) -> Result<(Simulator, LicenseCleanupPolicySpec), BoxError> {
    let latency = Duration::from_millis(options.latency_ms);
    let simulator = start_simulator(options.seed, users, latency).await?;
    let spec = policy(&simulator, reclaims, concurrency);
    simulator.clear_records();
    Ok((simulator, spec))
}

/// Which run of the product (b) measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProductRun {
    /// Enforcing, deleting through selections (the default).
    Bulk,
    /// Enforcing, one DELETE a seat (`site.bulk: false`).
    PerSeat,
    /// A dry run: the same reads, no deletion.
    ReadsOnly,
}

/// The product: `run::execute` with the enforcing policy, in bulk or one seat a request, or as a dry run; after the
/// bulk run, `restore` gives every seat it took back (measured apart).
async fn product_run(
    options: &Options,
    users: usize,
    reclaims: u32,
    how: ProductRun,
) -> Result<(RunMeasure, Option<RunMeasure>), BoxError> {
    let concurrency = options.concurrency;
    let (simulator, mut spec) = start_run(options, users, reclaims, concurrency).await?;
    spec.site.bulk = how != ProductRun::PerSeat;
    spec.dry_run = how == ProductRun::ReadsOnly;
    let credentials = Credentials::from_entries(&simulator.pki().secret_entries())?;
    eprintln!("(b) product run ({how:?}): run::execute, concurrency {concurrency}");
    let (cpu0, start) = (process_cpu(), Instant::now());
    let context = RunContext::new(&credentials, simulator.now());
    let valid = policy::validate(&spec, &Default::default())?;
    let report = run::execute(&valid, context).await;
    let measure = RunMeasure::from_simulator(&simulator, start.elapsed(), process_cpu() - cpu0);
    if report.result != RunResult::Succeeded {
        let (result, message) = (report.result, report.message);
        return Err(format!("the product run did not succeed: {result:?}: {message}").into());
    }
    let restored = match how {
        ProductRun::Bulk => Some(restore_run(&simulator, &valid, &credentials, &report).await?),
        _ => None,
    };
    simulator.shutdown().await;
    Ok((measure, restored))
}

/// `restore` of every seat `report`'s run took, as `restore --run` gives them back, measured on its own.
async fn restore_run(
    simulator: &Simulator,
    valid: &policy::ValidPolicy,
    credentials: &Credentials,
    report: &run::RunReport,
) -> Result<RunMeasure, BoxError> {
    let record = qlik_license_reclaimer::record::RunRecord::of(report);
    let seats = qlik_license_reclaimer::restore::seats_of(&record, &[])?;
    let client = QrsClient::connect(&valid.connection, credentials, None).await?;
    simulator.clear_records();
    eprintln!("(b) restore of the {} seats the bulk run took", seats.len());
    let (cpu0, start) = (process_cpu(), Instant::now());
    let status =
        qlik_license_reclaimer::restore::restore(&client, &seats, false, "bench".into()).await;
    let measure = RunMeasure::from_simulator(simulator, start.elapsed(), process_cpu() - cpu0);
    client.close().await;
    if status.restored != seats.len() as u64 {
        return Err(format!(
            "the restore gave back {} of {} seats: {}",
            status.restored,
            seats.len(),
            status.message
        )
        .into());
    }
    Ok(measure)
}

/// The approach of the original script, with the product's client one request at a time: every allocation listed,
/// each user fetched alone, the decision made by the same engine and policy (so both reclaim the same seats), then
/// one DELETE at a time.
async fn sequential_run(
    options: &Options,
    users: usize,
    reclaims: u32,
) -> Result<RunMeasure, BoxError> {
    let (simulator, spec) = start_run(options, users, reclaims, 1).await?;
    let rules = policy::rules(&spec)?;
    let client = connect(&simulator, &spec).await?;
    simulator.clear_records();
    eprintln!("(b) sequential: every allocation, one GET per user, one DELETE at a time");
    let (cpu0, start) = (process_cpu(), Instant::now());
    let now = simulator.now();
    let site = read_site(&client, &rules, now, true).await?;
    let decided = plan::decide(&rules, &site.allocations, &site.users, &site.totals, now);
    if let Some(trip) = &decided.breaker {
        return Err(format!("the sequential plan tripped the breaker: {trip}").into());
    }
    for reclaim in decided.reclaims().map(|d| &d.allocation) {
        client.deallocate(reclaim.access_type, &reclaim.id).await?;
    }
    let measure = RunMeasure::from_simulator(&simulator, start.elapsed(), process_cpu() - cpu0);
    client.close().await;
    simulator.shutdown().await;
    Ok(measure)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunComparison {
    users: usize,
    latency_ms: u64,
    max_reclaims_per_run: u32,
    /// Deleting through selections (the default).
    product: RunMeasure,
    /// One DELETE a seat.
    product_per_seat: RunMeasure,
    /// A dry run of the same policy: the reads alone.
    reads_only: RunMeasure,
    /// `restore` of every seat the bulk run took.
    restore: RunMeasure,
    sequential: RunMeasure,
    /// The sequential client's time over the product's (bulk).
    speedup: f64,
    speedup_per_seat: f64,
    /// The product's (bulk) time over the reads' alone.
    over_reads: f64,
    same_seats: bool,
    requests_at_most_250: bool,
    restore_requests_at_most_60: bool,
    speedup_at_least_15x: bool,
    within_2x_of_reads: bool,
}

async fn bench_run(options: &Options) -> Result<RunComparison, BoxError> {
    let users = options.pick(20_000, 2_000, options.users);
    let reclaims = options.pick(2_000, 200, options.reclaims);
    let (product, restore) = product_run(options, users, reclaims, ProductRun::Bulk).await?;
    let restore = restore.ok_or("the bulk run measured no restore")?;
    let (product_per_seat, _) = product_run(options, users, reclaims, ProductRun::PerSeat).await?;
    let (reads_only, _) = product_run(options, users, reclaims, ProductRun::ReadsOnly).await?;
    let sequential = sequential_run(options, users, reclaims).await?;
    if product.seats_deleted != sequential.seats_deleted {
        return Err(format!(
            "the two clients deleted different numbers of seats: product {}, sequential {}",
            product.seats_deleted, sequential.seats_deleted
        )
        .into());
    }
    let speedup = sequential.wall_seconds / product.wall_seconds;
    let over_reads = product.wall_seconds / reads_only.wall_seconds;
    Ok(RunComparison {
        users,
        latency_ms: options.latency_ms,
        max_reclaims_per_run: reclaims,
        same_seats: product.deleted == sequential.deleted
            && product_per_seat.deleted == sequential.deleted,
        requests_at_most_250: product.requests <= 250,
        restore_requests_at_most_60: restore.requests <= 60,
        speedup_per_seat: sequential.wall_seconds / product_per_seat.wall_seconds,
        product,
        product_per_seat,
        reads_only,
        restore,
        sequential,
        speedup,
        over_reads,
        speedup_at_least_15x: speedup >= 15.0,
        within_2x_of_reads: over_reads <= 2.0,
    })
}

/// What `cargo test` runs: both parts on small sites, checked for what they must produce, not timed.
fn smoke() -> Result<(), BoxError> {
    let reclaims = 60;
    let options = Options {
        quick: true,
        decide_only: false,
        run_only: false,
        seed: 42,
        decide_users: Some(3_000),
        users: Some(800),
        reclaims: Some(reclaims),
        concurrency: 8,
        iterations: Some(1),
        latency_ms: 1,
        bench: false,
    };
    let decided = bench_decide(&options)?;
    if decided.allocations == 0 || decided.plan.reclaim == 0 || decided.breaker.is_some() {
        return Err(format!("(a) decided nothing to reclaim: {}", json!(decided)).into());
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let run = runtime.block_on(bench_run(&options))?;
    if !run.same_seats || run.product.seats_deleted != reclaims as usize {
        return Err(format!(
            "(b) product {} and sequential {} seats deleted, {reclaims} expected, the same ones: {}",
            run.product.seats_deleted,
            run.sequential.seats_deleted,
            run.same_seats
        )
        .into());
    }
    Ok(())
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `cargo bench` passes --bench. Without it, this is `cargo test` (or another harness's arguments): the smoke.
    if !std::env::args().any(|a| a == "--bench") {
        let arguments = libtest_mimic::Arguments::from_args();
        let trial = libtest_mimic::Trial::test("reclaim_bench_smoke", || {
            smoke().map_err(|e| e.to_string().into())
        });
        libtest_mimic::run(&arguments, vec![trial]).exit();
    }
    let options = Options::parse();
    let mut report = serde_json::Map::new();
    report.insert("quick".into(), json!(options.quick));
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    report.insert("cpus".into(), json!(cpus));
    let mut failed = None;
    // (a) first, on the main thread, before any runtime thread of (b) exists.
    if !options.run_only {
        match bench_decide(&options) {
            Ok(measure) => drop(report.insert("decide".into(), json!(measure))),
            Err(e) => failed = Some(format!("benchmark (a) failed: {e}")),
        }
    }
    if !options.decide_only && failed.is_none() {
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        match runtime.block_on(bench_run(&options)) {
            Ok(comparison) => drop(report.insert("run".into(), json!(comparison))),
            Err(e) => failed = Some(format!("benchmark (b) failed: {e}")),
        }
    }
    let report = serde_json::Value::Object(report);
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    if let Some(message) = failed {
        eprintln!("{message}");
        std::process::exit(1);
    }
}

/// What the benchmark's runs know of users: their records, no authoring, no earlier moves.
fn known(users: &HashMap<String, qlik_license_reclaimer::model::UserDetails>) -> plan::Known<'_> {
    static NOTHING: std::sync::LazyLock<(
        HashMap<String, qlik_license_reclaimer::authoring::Evidence>,
        HashMap<qlik_license_reclaimer::model::UserIdentity, jiff::Timestamp>,
    )> = std::sync::LazyLock::new(|| (HashMap::new(), HashMap::new()));
    plan::Known {
        users,
        authoring: &NOTHING.0,
        moved: &NOTHING.1,
    }
}
