//! Benchmarks of the targets in DESIGN.md section 9.
//!
//! (a) Deciding 100,000 allocations: `plan::users_needing_details` plus `plan::decide_owned` (as `run::execute`
//!     calls them; `plan::decide` for reference) on a synthetic, in-memory site, timed in thread CPU time, with
//!     the peak heap measured by a counting global allocator (switched off while timing).
//! (b) A run against the bundled QRS simulator (5 ms of latency per request, 20,000 users, 2,000 reclaims):
//!     the product's own `run::execute` against a sequential one-request-at-a-time client (unfiltered lists,
//!     one user request per allocation, one DELETE at a time), on two simulators started from the same seed.
//!
//! ```text
//! cargo bench --bench reclaim                  # full run (about 2 to 3 minutes, most of it the sequential client)
//! cargo bench --bench reclaim -- --quick       # smoke run: 2,000 users, 200 reclaims, fewer iterations
//! cargo bench --bench reclaim -- --json        # the same measurements as JSON on stdout
//! ```
//!
//! Other options: `--decide-only`, `--run-only`, `--seed N`, `--users N`, `--reclaims N`, `--concurrency N`,
//! `--iterations N`. Progress goes to stderr, the report to stdout.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::error::Error;
use std::fmt::Write as _;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use qlik_license_reclaimer::credentials::Credentials;
use qlik_license_reclaimer::model::{AccessType, Allocation, LastUse, UserDetails, UserIdentity};
use qlik_license_reclaimer::plan::{self, Plan, Rules};
use qlik_license_reclaimer::policy::{
    AccessTypeRule, AccessTypesSpec, CustomPropertyMatch, ExcludeSpec, LicenseCleanupPolicySpec,
    LimitsSpec, QlikUserSpec, RunResult, ScopeSpec, SecretRef, SiteSpec, TlsSpec,
};
use qlik_license_reclaimer::run::{self, RunContext};
use qrs_simulator::{Simulator, SimulatorConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use serde_json::json;

type BoxError = Box<dyn Error + Send + Sync>;

// ---------------------------------------------------------------------------------------------------------------
// Heap accounting
// ---------------------------------------------------------------------------------------------------------------

/// `System`, counting the bytes currently allocated and their high-water mark.
struct CountingAllocator;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Counting costs a few atomic operations per allocation; it is switched off (for good) before anything is timed.
static COUNTING: AtomicBool = AtomicBool::new(true);

fn grew(bytes: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

fn shrank(bytes: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        CURRENT.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// From here on the allocator only forwards to `System`; the counters are not read again.
fn stop_counting() {
    COUNTING.store(false, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; the counters never affect what is returned.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, that is by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is checked by the caller.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Bytes allocated now.
fn heap_now() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// Starts a new high-water mark at the current level and returns that level.
fn reset_heap_peak() -> usize {
    let now = heap_now();
    PEAK.store(now, Ordering::Relaxed);
    now
}

fn heap_peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// The process's peak resident set (`VmHWM`), in bytes.
fn vm_hwm() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

// ---------------------------------------------------------------------------------------------------------------
// CPU time
// ---------------------------------------------------------------------------------------------------------------

/// CPU time consumed by the calling thread.
fn thread_cpu() -> Duration {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time consumed by the whole process (every thread, the in-process simulator included).
fn process_cpu() -> Duration {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn clock(id: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock ids are ones Linux always provides.
    let rc = unsafe { libc::clock_gettime(id, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime failed");
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

// ---------------------------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------------------------

struct Options {
    json: bool,
    quick: bool,
    decide: bool,
    run: bool,
    seed: u64,
    users: usize,
    reclaims: u32,
    concurrency: u32,
    latency: Duration,
    allocations: usize,
    iterations: usize,
}

const USAGE: &str = "usage: cargo bench --bench reclaim -- [--quick] [--json] [--decide-only | --run-only] \
[--seed N] [--users N] [--reclaims N] [--concurrency N] [--iterations N]";

impl Options {
    fn parse() -> Result<Options, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = args.iter().any(|a| a == "--quick");
        let mut options = Options {
            json: false,
            quick,
            decide: true,
            run: true,
            seed: 42,
            users: if quick { 2_000 } else { 20_000 },
            reclaims: if quick { 200 } else { 2_000 },
            concurrency: 8,
            latency: Duration::from_millis(5),
            allocations: 100_000,
            iterations: if quick { 5 } else { 21 },
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| -> Result<u64, String> {
                it.next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("{name} needs a number\n{USAGE}"))
            };
            match arg.as_str() {
                // `cargo bench` passes --bench to every harness-less benchmark.
                "--bench" | "--quick" => {}
                "--json" => options.json = true,
                "--decide-only" => options.run = false,
                "--run-only" => options.decide = false,
                "--seed" => options.seed = value("--seed")?,
                "--users" => options.users = value("--users")? as usize,
                "--reclaims" => {
                    options.reclaims =
                        u32::try_from(value("--reclaims")?).map_err(|e| e.to_string())?
                }
                "--concurrency" => {
                    options.concurrency =
                        u32::try_from(value("--concurrency")?).map_err(|e| e.to_string())?
                }
                "--iterations" => options.iterations = (value("--iterations")? as usize).max(1),
                "-h" | "--help" => return Err(USAGE.to_string()),
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        Ok(options)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------------------------

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

fn minimum(values: &[Duration]) -> Duration {
    values.iter().copied().min().unwrap_or_default()
}

macro_rules! progress {
    ($($arg:tt)*) => {
        eprintln!("[reclaim bench] {}", format_args!($($arg)*))
    };
}

// ---------------------------------------------------------------------------------------------------------------
// (a) Deciding 100,000 allocations
// ---------------------------------------------------------------------------------------------------------------

/// A policy with every kind of exclusion the engine knows.
fn decide_policy() -> LicenseCleanupPolicySpec {
    LicenseCleanupPolicySpec {
        schedule: "0 3 * * *".into(),
        time_zone: "UTC".into(),
        suspend: false,
        dry_run: false,
        starting_deadline_seconds: 3600,
        site: SiteSpec {
            repository_url: Some("https://qlik.example.com:4242".into()),
            proxy: None,
            user: QlikUserSpec::default(),
            credentials_secret_ref: SecretRef {
                name: "qlik-client-certificate".into(),
            },
            tls: TlsSpec::default(),
            request_timeout_seconds: 30,
            concurrency: 4,
        },
        access_types: AccessTypesSpec {
            professional: Some(AccessTypeRule { inactive_days: 30 }),
            analyzer: Some(AccessTypeRule { inactive_days: 30 }),
            user: Some(AccessTypeRule { inactive_days: 60 }),
        },
        never_used_grace_days: 14,
        scope: ScopeSpec::default(),
        exclude: ExcludeSpec {
            users: vec![
                "INTERNAL\\sa_*".into(),
                "CORP\\svc_*".into(),
                "CORP\\adm-*".into(),
                "EXTERNAL\\*@auditor.example".into(),
            ],
            user_directories: vec!["TEST".into(), "LEGACY".into()],
            tags: vec!["VIP".into(), "Board".into()],
            custom_properties: vec![
                CustomPropertyMatch {
                    name: "LicenseCleanup".into(),
                    values: vec!["Exempt".into(), "Keep".into()],
                },
                CustomPropertyMatch {
                    name: "LegalHold".into(),
                    values: vec![],
                },
            ],
            roles: vec!["RootAdmin".into(), "AuditAdmin".into()],
        },
        limits: LimitsSpec {
            max_reclaims_per_run: 2_000,
            max_reclaim_percent: 60,
        },
        history_limit: 10,
    }
}

const FIRST: &[&str] = &[
    "anna", "ben", "carla", "david", "elif", "farid", "greta", "hiro", "ines", "jonas", "kari",
    "lars", "maja", "nils", "olga", "per", "quinn", "rosa", "sven", "tuva",
];
const LAST: &[&str] = &[
    "hansen", "johansen", "olsen", "larsen", "andersen", "pedersen", "nilsen", "berg", "haugen",
    "garcia", "nakamura", "okafor", "kowalski", "novak", "rossi", "schmidt", "dubois", "silva",
    "khan", "nguyen",
];
const DEPARTMENTS: &[&str] = &[
    "Finance",
    "Sales",
    "HR",
    "Operations",
    "IT",
    "Marketing",
    "Supply Chain",
];

fn guid(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

fn days_ago(now: Timestamp, days: f64) -> Timestamp {
    now - SignedDuration::from_secs_f64(days * 86_400.0)
}

/// `count` allocations, one per user, with the spread of a real site.
///
/// Users: 84% CORP, 12% EXTERNAL, some PARTNER, TEST (an excluded directory) and INTERNAL service accounts, and
/// a few pattern-excluded accounts (`svc_*`, `adm-*`, auditors). Seats: 47% professional, 47% analyzer, 6%
/// user passes. Last use: 55% within 30 days, 20% 30-90 days, 10% 90-365, 6% over a year, 7% never (created over
/// the past year, a quarter within the 14-day grace), 2% quarantined, and a few unreadable dates.
fn synthetic_allocations(count: usize, seed: u64, now: Timestamp) -> Vec<Allocation> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut allocations = Vec::with_capacity(count);
    for i in 0..count {
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        let d = rng.random::<f64>();
        let (directory, user_id) = if d < 0.84 {
            let special = rng.random::<f64>();
            let id = if special < 0.004 {
                format!("svc_{last}{i}")
            } else if special < 0.006 {
                format!("adm-{first}{i}")
            } else {
                format!("{}{last}{i}", &first[..1])
            };
            ("CORP", id)
        } else if d < 0.96 {
            let domain = if rng.random_bool(0.02) {
                "auditor.example"
            } else {
                "partner.example"
            };
            ("EXTERNAL", format!("{first}.{last}{i}@{domain}"))
        } else if d < 0.985 {
            ("PARTNER", format!("{first}{last}{i}"))
        } else if d < 0.995 {
            ("TEST", format!("tester{i}"))
        } else {
            ("INTERNAL", format!("sa_job{i}"))
        };

        let pick = rng.random::<f64>();
        let access_type = if pick < 0.47 {
            AccessType::Professional
        } else if pick < 0.94 {
            AccessType::Analyzer
        } else {
            AccessType::User
        };

        let bucket = rng.random::<f64>();
        let mut quarantined = false;
        let mut quarantine_end = None;
        let (last_used, created) = if bucket < 0.0005 {
            (
                LastUse::Unknown("31/01/2024 19:44".into()),
                Some(days_ago(now, rng.random_range(30.0..700.0))),
            )
        } else if bucket < 0.07 {
            // Never used; a quarter of them inside the 14-day grace.
            let age = if rng.random_bool(0.25) {
                rng.random_range(0.0..14.0)
            } else {
                rng.random_range(14.0..365.0)
            };
            (LastUse::Never, Some(days_ago(now, age)))
        } else if bucket < 0.09 {
            let used = days_ago(now, rng.random_range(0.0..7.0));
            quarantined = true;
            quarantine_end = Some(used + SignedDuration::from_hours(7 * 24));
            (
                LastUse::At(used),
                Some(days_ago(now, rng.random_range(30.0..700.0))),
            )
        } else {
            let idle = match rng.random::<f64>() {
                x if x < 0.55 / 0.91 => rng.random_range(0.0..30.0),
                x if x < 0.75 / 0.91 => rng.random_range(30.0..90.0),
                x if x < 0.85 / 0.91 => rng.random_range(90.0..365.0),
                _ => rng.random_range(365.0..1100.0),
            };
            let used = days_ago(now, idle);
            (
                LastUse::At(used),
                Some(used - SignedDuration::from_hours(rng.random_range(1..700 * 24))),
            )
        };

        allocations.push(Allocation {
            id: guid(&mut rng),
            access_type,
            user_id: guid(&mut rng),
            user: UserIdentity::new(directory, user_id),
            user_name: format!("{} {}", capitalized(first), capitalized(last)),
            last_used,
            created,
            quarantined,
            quarantine_end,
            incomplete: None,
        });
    }
    allocations
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The QRS record of every user holding one of `allocations`, keyed by QRS user id.
///
/// Every record has a Department custom property; contractors (EXTERNAL) a tag; a few percent are VIP, Board,
/// LicenseCleanup=Exempt or Review, LegalHold, RootAdmin, ContentAdmin or AuditAdmin.
fn synthetic_users(allocations: &[Allocation], seed: u64) -> HashMap<String, UserDetails> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5553_4552);
    let mut users = HashMap::with_capacity(allocations.len());
    for allocation in allocations {
        let mut tags = Vec::new();
        if allocation.user.directory == "EXTERNAL" {
            tags.push("Contractor".to_string());
        }
        if rng.random_bool(0.02) {
            tags.push("VIP".to_string());
        }
        if rng.random_bool(0.003) {
            tags.push("Board".to_string());
        }
        let mut custom_properties = vec![(
            "Department".to_string(),
            DEPARTMENTS[rng.random_range(0..DEPARTMENTS.len())].to_string(),
        )];
        let cleanup = rng.random::<f64>();
        if cleanup < 0.015 {
            custom_properties.push(("LicenseCleanup".into(), "Exempt".into()));
        } else if cleanup < 0.025 {
            custom_properties.push(("LicenseCleanup".into(), "Review".into()));
        }
        if rng.random_bool(0.003) {
            custom_properties.push(("LegalHold".into(), "2025-Q1".into()));
        }
        let mut roles = Vec::new();
        let role = rng.random::<f64>();
        if role < 0.005 {
            roles.push("RootAdmin".to_string());
        } else if role < 0.025 {
            roles.push("ContentAdmin".to_string());
        } else if role < 0.027 {
            roles.push("AuditAdmin".to_string());
        }
        let status = rng.random::<f64>();
        users.insert(
            allocation.user_id.clone(),
            UserDetails {
                id: allocation.user_id.clone(),
                tags: Some(tags),
                custom_properties: Some(custom_properties),
                roles: Some(roles),
                inactive: (0.02..0.05).contains(&status),
                removed_externally: status < 0.02,
                blacklisted: (0.05..0.055).contains(&status),
            },
        );
    }
    users
}

/// Whether a user record carries something the benchmark policy excludes on.
fn has_excluding_detail(details: &UserDetails) -> bool {
    details
        .tags
        .iter()
        .flatten()
        .any(|t| t == "VIP" || t == "Board")
        || details.custom_properties.iter().flatten().any(|(n, v)| {
            (n == "LicenseCleanup" && (v == "Exempt" || v == "Keep")) || n == "LegalHold"
        })
        || details
            .roles
            .iter()
            .flatten()
            .any(|r| r == "RootAdmin" || r == "AuditAdmin")
}

/// Heap used by one call: the live heap when it started (what the caller holds) and the high-water mark.
#[derive(Clone, Copy)]
struct HeapUse {
    before: usize,
    peak: usize,
}

impl HeapUse {
    fn during(&self) -> usize {
        self.peak.saturating_sub(self.before)
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "heapBeforeBytes": self.before,
            "heapPeakBytes": self.peak,
            "heapDuringCallBytes": self.during(),
        })
    }
}

struct Timings {
    cpu: Vec<Duration>,
    wall: Vec<Duration>,
    needing_cpu: Vec<Duration>,
    decide_cpu: Vec<Duration>,
}

impl Timings {
    fn new() -> Timings {
        Timings {
            cpu: Vec::new(),
            wall: Vec::new(),
            needing_cpu: Vec::new(),
            decide_cpu: Vec::new(),
        }
    }

    fn json(&self) -> serde_json::Value {
        let stat = |v: &[Duration]| json!({"median": ms(median(v)), "min": ms(minimum(v))});
        json!({
            "cpuMs": stat(&self.cpu),
            "wallMs": stat(&self.wall),
            "usersNeedingDetailsCpuMs": stat(&self.needing_cpu),
            "decideCpuMs": stat(&self.decide_cpu),
        })
    }
}

/// Times `users_needing_details` followed by `decider` (given its input by `input`, made before the clock starts).
fn time_decide<I: AsRef<[Allocation]>>(
    iterations: usize,
    rules: &Rules,
    now: Timestamp,
    mut input: impl FnMut() -> I,
    mut decider: impl FnMut(I) -> Plan,
) -> Timings {
    let mut timings = Timings::new();
    for _ in 0..iterations {
        let input = input();
        let (c0, w0) = (thread_cpu(), Instant::now());
        let ids = plan::users_needing_details(rules, black_box(input.as_ref()), now);
        let c1 = thread_cpu();
        let decided = decider(black_box(input));
        let (c2, w2) = (thread_cpu(), Instant::now());
        timings.cpu.push(c2 - c0);
        timings.wall.push(w2 - w0);
        timings.needing_cpu.push(c1 - c0);
        timings.decide_cpu.push(c2 - c1);
        black_box(&ids);
        black_box(&decided);
    }
    timings
}

fn bench_decide(options: &Options, out: &mut String) -> serde_json::Value {
    let now: Timestamp = "2025-06-02T03:00:00Z".parse().expect("a valid instant");
    let spec = decide_policy();
    let rules = Rules::from_spec(&spec).expect("the benchmark policy is valid");

    progress!(
        "(a) building {} synthetic allocations",
        thousands(options.allocations as u64)
    );
    let heap_empty = heap_now();
    let allocations = synthetic_allocations(options.allocations, options.seed, now);
    let allocation_heap = heap_now() - heap_empty;

    // What the QRS client would have fetched: the records of the users the engine asks for.
    let (users, needed_count) = {
        let mut all_users = synthetic_users(&allocations, options.seed);
        let needed = plan::users_needing_details(&rules, &allocations, now);
        let users: HashMap<String, UserDetails> = needed
            .iter()
            .filter_map(|id| all_users.remove_entry(id))
            .collect();
        (users, needed.len())
    };
    let with_excluding = users.values().filter(|u| has_excluding_detail(u)).count();
    let mut totals: BTreeMap<AccessType, u64> = BTreeMap::new();
    for a in &allocations {
        *totals.entry(a.access_type).or_default() += 1;
    }
    let input_heap = heap_now() - heap_empty;

    // Warm-up, and the plan whose counts the report shows.
    let sample: Plan = {
        black_box(plan::users_needing_details(&rules, &allocations, now));
        plan::decide(&rules, &allocations, &users, &totals, now)
    };
    let counts = sample.totals();
    let breaker = sample.breaker.as_ref().map(ToString::to_string);
    drop(sample);

    // Heap, with the counting allocator: `decide_owned` (what `run::execute` calls) moves the allocations into
    // the decisions; `decide` copies them.
    progress!("(a) measuring the heap of users_needing_details + decide_owned / decide");
    let borrowed_heap = {
        let before = reset_heap_peak();
        let ids = plan::users_needing_details(&rules, &allocations, now);
        let decided = plan::decide(&rules, &allocations, &users, &totals, now);
        let peak = heap_peak();
        black_box((ids, decided));
        HeapUse { before, peak }
    };
    let owned_heap = {
        let before_copy = heap_now();
        let input = allocations.clone();
        let copy = heap_now() - before_copy;
        let before = reset_heap_peak();
        let ids = plan::users_needing_details(&rules, &input, now);
        let decided = plan::decide_owned(&rules, input, &users, &totals, now);
        let peak = heap_peak();
        black_box((ids, decided));
        // As a caller that owns its only copy of the allocations: the benchmark's own copy does not count.
        HeapUse {
            before: before - copy,
            peak: peak - copy,
        }
    };
    stop_counting();

    progress!(
        "(a) timing users_needing_details + decide_owned / decide, {} iterations",
        options.iterations
    );
    let borrowed = time_decide(
        options.iterations,
        &rules,
        now,
        || allocations.as_slice(),
        |input| plan::decide(&rules, input, &users, &totals, now),
    );
    // The copy `decide_owned` consumes is made before the clock starts: a caller that owns its allocations
    // needs none.
    let owned = time_decide(
        options.iterations,
        &rules,
        now,
        || allocations.clone(),
        |input| plan::decide_owned(&rules, input, &users, &totals, now),
    );
    let hwm = vm_hwm();

    // The targets are judged on the path `run::execute` takes: `users_needing_details`, then `decide_owned`.
    let cpu_median = median(&owned.cpu);
    let cpu_ok = cpu_median < Duration::from_millis(100);
    let mem_ok = (owned_heap.peak as u64) < 100 * 1024 * 1024;
    let types = |t: AccessType| thousands(totals.get(&t).copied().unwrap_or(0));

    let _ = writeln!(
        out,
        "(a) Deciding {} allocations",
        thousands(allocations.len() as u64)
    );
    let _ = writeln!(
        out,
        "    input      {} professional, {} analyzer, {} user passes, one user each",
        types(AccessType::Professional),
        types(AccessType::Analyzer),
        types(AccessType::User),
    );
    let _ = writeln!(
        out,
        "               heap: {:.1} MiB of allocations + {:.1} MiB of user records = {:.1} MiB",
        mib(allocation_heap as u64),
        mib((input_heap - allocation_heap) as u64),
        mib(input_heap as u64),
    );
    let _ = writeln!(
        out,
        "    policy     professional/analyzer 30 days, user passes 60, grace 14; exclude 4 user patterns, 2 directories,"
    );
    let _ = writeln!(
        out,
        "               2 tags, 2 custom properties (one any-value), 2 roles; maxReclaimsPerRun {}, maxReclaimPercent {}",
        spec.limits.max_reclaims_per_run, spec.limits.max_reclaim_percent
    );
    let _ = writeln!(
        out,
        "    details    {} users needing details ({} of them with an excluding tag, custom property or role)",
        thousands(needed_count as u64),
        thousands(with_excluding as u64)
    );
    let _ = writeln!(
        out,
        "    outcome    {} candidates ({} reclaim, {} deferred), {} excluded, {} kept{}",
        thousands(counts.candidates),
        thousands(counts.reclaim),
        thousands(counts.deferred),
        thousands(counts.excluded),
        thousands(counts.kept),
        breaker
            .as_deref()
            .map(|b| format!("; BREAKER: {b}"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "    users_needing_details + decide_owned, as run::execute calls them; {} iterations, thread CPU time:",
        options.iterations
    );
    let _ = writeln!(
        out,
        "      CPU        median {:7.1} ms   min {:7.1} ms   target < 100 ms     {}",
        ms(cpu_median),
        ms(minimum(&owned.cpu)),
        verdict(cpu_ok)
    );
    let _ = writeln!(
        out,
        "      wall       median {:7.1} ms   min {:7.1} ms",
        ms(median(&owned.wall)),
        ms(minimum(&owned.wall))
    );
    let _ = writeln!(
        out,
        "      split      users_needing_details median {:.1} ms, decide_owned median {:.1} ms",
        ms(median(&owned.needing_cpu)),
        ms(median(&owned.decide_cpu))
    );
    let _ = writeln!(
        out,
        "      heap peak  {:.1} MiB live = {:.1} MiB of inputs + {:.1} MiB during the calls   target < 100 MiB   {}",
        mib(owned_heap.peak as u64),
        mib(owned_heap.before as u64),
        mib(owned_heap.during() as u64),
        verdict(mem_ok)
    );
    let _ = writeln!(
        out,
        "    for reference, plan::decide (borrows the allocations and copies them into the plan):"
    );
    let _ = writeln!(
        out,
        "      CPU median {:.1} ms (min {:.1}); heap peak {:.1} MiB live = {:.1} MiB of inputs + {:.1} MiB during the calls",
        ms(median(&borrowed.cpu)),
        ms(minimum(&borrowed.cpu)),
        mib(borrowed_heap.peak as u64),
        mib(borrowed_heap.before as u64),
        mib(borrowed_heap.during() as u64),
    );
    if let Some(hwm) = hwm {
        let _ = writeln!(
            out,
            "    process VmHWM {:.1} MiB (peak resident of the whole benchmark so far, synthetic generation included)",
            mib(hwm)
        );
    }

    json!({
        "allocations": allocations.len(),
        "perAccessType": totals.iter().map(|(t, n)| (t.key().to_string(), *n)).collect::<BTreeMap<_, _>>(),
        "allocationsHeapBytes": allocation_heap,
        "inputHeapBytes": input_heap,
        "usersNeedingDetails": needed_count,
        "usersWithExcludingDetails": with_excluding,
        "plan": {
            "candidates": counts.candidates,
            "reclaim": counts.reclaim,
            "deferred": counts.deferred,
            "excluded": counts.excluded,
            "kept": counts.kept,
            "breaker": breaker,
        },
        "iterations": options.iterations,
        "decideOwned": {"timing": owned.json(), "heap": owned_heap.json()},
        "decide": {"timing": borrowed.json(), "heap": borrowed_heap.json()},
        "vmHwmBytes": hwm,
        "targets": {"cpuUnder100ms": cpu_ok, "peakHeapUnder100MiB": mem_ok},
    })
}

// ---------------------------------------------------------------------------------------------------------------
// (b) Against the simulator
// ---------------------------------------------------------------------------------------------------------------

/// The enforcing policy both clients apply: 30 days for professional and analyzer seats, 14 days of grace, the
/// usual exclusions, `reclaims` seats at most and no percentage breaker.
fn run_policy(simulator: &Simulator, reclaims: u32, concurrency: u32) -> LicenseCleanupPolicySpec {
    LicenseCleanupPolicySpec {
        schedule: "0 3 * * *".into(),
        time_zone: "UTC".into(),
        suspend: false,
        dry_run: false,
        starting_deadline_seconds: 3600,
        site: SiteSpec {
            repository_url: Some(simulator.repository_url()),
            proxy: None,
            user: QlikUserSpec::default(),
            credentials_secret_ref: SecretRef {
                name: "qlik-client-certificate".into(),
            },
            tls: TlsSpec {
                server_name: Some(simulator.pki().server_name.clone()),
                insecure_skip_verify: false,
            },
            request_timeout_seconds: 30,
            concurrency,
        },
        access_types: AccessTypesSpec {
            professional: Some(AccessTypeRule { inactive_days: 30 }),
            analyzer: Some(AccessTypeRule { inactive_days: 30 }),
            user: None,
        },
        never_used_grace_days: 14,
        scope: ScopeSpec::default(),
        exclude: ExcludeSpec {
            users: vec!["INTERNAL\\sa_*".into()],
            user_directories: vec![],
            tags: vec!["VIP".into()],
            custom_properties: vec![CustomPropertyMatch {
                name: "LicenseCleanup".into(),
                values: vec!["Exempt".into()],
            }],
            roles: vec!["RootAdmin".into()],
        },
        limits: LimitsSpec {
            max_reclaims_per_run: reclaims,
            max_reclaim_percent: 100,
        },
        history_limit: 10,
    }
}

async fn start_simulator(options: &Options) -> Result<Simulator, BoxError> {
    let simulator = Simulator::start(SimulatorConfig {
        seed: options.seed,
        users: options.users,
        latency: options.latency,
        ..SimulatorConfig::default()
    })
    .await?;
    Ok(simulator)
}

/// What one client did against one simulator.
struct RunMeasure {
    wall: Duration,
    process_cpu: Duration,
    /// Requests by `METHOD endpoint`, GUIDs replaced by `{id}`.
    requests: BTreeMap<String, u64>,
    request_total: u64,
    deletes: u64,
    /// Allocation ids the simulator recorded as deleted.
    deleted: BTreeSet<String>,
    allocations_seen: u64,
    candidates: u64,
}

impl RunMeasure {
    fn from_simulator(simulator: &Simulator, wall: Duration, process_cpu: Duration) -> RunMeasure {
        let mut requests = BTreeMap::new();
        let recorded = simulator.requests();
        for r in &recorded {
            let endpoint: Vec<&str> = r
                .path
                .split('/')
                .map(|segment| {
                    if uuid::Uuid::try_parse(segment).is_ok() {
                        "{id}"
                    } else {
                        segment
                    }
                })
                .collect();
            *requests
                .entry(format!("{} {}", r.method, endpoint.join("/")))
                .or_default() += 1;
        }
        let deletions = simulator.deletions();
        RunMeasure {
            wall,
            process_cpu,
            requests,
            request_total: recorded.len() as u64,
            deletes: recorded.iter().filter(|r| r.method == "DELETE").count() as u64,
            deleted: deletions
                .iter()
                .map(|d| d.allocation_id.to_string())
                .collect(),
            allocations_seen: 0,
            candidates: 0,
        }
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "wallSeconds": self.wall.as_secs_f64(),
            "processCpuSeconds": self.process_cpu.as_secs_f64(),
            "requests": self.request_total,
            "deletes": self.deletes,
            "seatsDeleted": self.deleted.len(),
            "requestsByEndpoint": self.requests,
            "allocationsRead": self.allocations_seen,
            "candidates": self.candidates,
        })
    }

    fn describe(&self, out: &mut String) {
        let mut by_endpoint: Vec<(&String, &u64)> = self.requests.iter().collect();
        by_endpoint.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let parts: Vec<String> = by_endpoint
            .iter()
            .map(|(endpoint, n)| format!("{} {endpoint}", thousands(**n)))
            .collect();
        let _ = writeln!(out, "        requests by endpoint: {}", parts.join(", "));
    }
}

/// The product: `run::execute` with the enforcing policy.
async fn product_run(options: &Options) -> Result<RunMeasure, BoxError> {
    progress!(
        "(b) starting the simulator: {} users, seed {}",
        thousands(options.users as u64),
        options.seed
    );
    let simulator = start_simulator(options).await?;
    let credentials = simulator_credentials(&simulator)?;
    let spec = run_policy(&simulator, options.reclaims, options.concurrency);
    simulator.clear_records();

    progress!(
        "(b) product run (run::execute, concurrency {})",
        options.concurrency
    );
    let (cpu0, start) = (process_cpu(), Instant::now());
    let report = run::execute(
        &spec,
        RunContext {
            credentials: &credentials,
            force_dry_run: false,
            now: simulator.now(),
            observer: None,
            stop: None,
            retry: None,
            permissions: Default::default(),
        },
    )
    .await?;
    let (wall, cpu) = (start.elapsed(), process_cpu() - cpu0);
    if report.result != RunResult::Succeeded {
        return Err(format!(
            "the product run did not succeed: {:?}: {}",
            report.result, report.message
        )
        .into());
    }
    let mut measure = RunMeasure::from_simulator(&simulator, wall, cpu);
    measure.allocations_seen = report.decisions.len() as u64;
    measure.candidates = report.totals.candidates;
    let reclaimed = report.reclaimed().count() as u64;
    if reclaimed != measure.deleted.len() as u64 {
        return Err(format!(
            "the report says {reclaimed} seats were reclaimed but the simulator recorded {} deletions",
            measure.deleted.len()
        )
        .into());
    }
    simulator.shutdown().await;
    Ok(measure)
}

fn simulator_credentials(simulator: &Simulator) -> Result<Credentials, BoxError> {
    let entries = simulator.pki().secret_entries();
    Ok(Credentials::from_entries(&entries)?)
}

// ----- The sequential client -----------------------------------------------------------------------------------

/// One row of `GET /qrs/license/<type>accesstype/full`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AllocationRow {
    id: String,
    #[serde(default)]
    created_date: Option<String>,
    #[serde(default)]
    last_used: Option<String>,
    #[serde(default)]
    quarantined: bool,
    #[serde(default)]
    quarantine_end: Option<String>,
    #[serde(default)]
    user: Option<UserRef>,
    #[serde(default)]
    deleted_user_id: Option<String>,
    #[serde(default)]
    deleted_user_directory: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRef {
    id: String,
    user_id: String,
    user_directory: String,
    #[serde(default)]
    name: Option<String>,
}

/// `GET /qrs/user/{id}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRow {
    id: String,
    #[serde(default)]
    roles: Option<Vec<String>>,
    #[serde(default)]
    tags: Option<Vec<Named>>,
    #[serde(default)]
    custom_properties: Option<Vec<PropertyValue>>,
    #[serde(default)]
    inactive: bool,
    #[serde(default)]
    removed_externally: bool,
    #[serde(default)]
    blacklisted: bool,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct PropertyValue {
    #[serde(default)]
    value: Option<String>,
    definition: Named,
}

/// A QRS date: `None` for the never-used sentinel (a year before 1900) or nothing; `Err` for anything else.
fn qrs_date(raw: &str) -> Result<Option<Timestamp>, ()> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let ts: Timestamp = raw.parse().map_err(|_| ())?;
    if ts.to_zoned(jiff::tz::TimeZone::UTC).year() < 1900 {
        Ok(None)
    } else {
        Ok(Some(ts))
    }
}

impl AllocationRow {
    fn into_allocation(self, access_type: AccessType) -> Option<Allocation> {
        let parse = |raw: Option<&str>| raw.and_then(|r| qrs_date(r).ok().flatten());
        let Some(user) = self.user else {
            // A deleted user's seat, in quarantine: nobody's to reclaim.
            return Some(Allocation {
                id: self.id,
                access_type,
                user_id: String::new(),
                user: UserIdentity::new(self.deleted_user_directory?, self.deleted_user_id?),
                user_name: "(deleted user)".into(),
                last_used: LastUse::Never,
                created: None,
                quarantined: true,
                quarantine_end: parse(self.quarantine_end.as_deref()),
                incomplete: None,
            });
        };
        let last_used = match self.last_used.as_deref() {
            None => LastUse::Never,
            Some(raw) => match qrs_date(raw) {
                Ok(Some(t)) => LastUse::At(t),
                Ok(None) => LastUse::Never,
                Err(()) => LastUse::Unknown(raw.to_string()),
            },
        };
        Some(Allocation {
            id: self.id,
            access_type,
            user_id: user.id,
            user: UserIdentity::new(user.user_directory, user.user_id),
            user_name: user.name.unwrap_or_default(),
            last_used,
            created: parse(self.created_date.as_deref()),
            quarantined: self.quarantined,
            quarantine_end: parse(self.quarantine_end.as_deref()),
            incomplete: None,
        })
    }
}

impl From<UserRow> for UserDetails {
    fn from(u: UserRow) -> UserDetails {
        UserDetails {
            id: u.id,
            tags: u
                .tags
                .map(|tags| tags.into_iter().map(|t| t.name).collect()),
            custom_properties: u.custom_properties.map(|properties| {
                properties
                    .into_iter()
                    .map(|p| (p.definition.name, p.value.unwrap_or_default()))
                    .collect()
            }),
            roles: u.roles,
            inactive: u.inactive,
            removed_externally: u.removed_externally,
            blacklisted: u.blacklisted,
        }
    }
}

/// What scripts do: one request at a time, each awaited before the next.
struct SequentialClient {
    http: reqwest::Client,
    base: String,
    xrfkey: &'static str,
    requests: u64,
}

impl SequentialClient {
    /// Mutual TLS with the simulator's certificates; the server certificate names `server_name`, which is
    /// resolved to the simulator's loopback address.
    fn new(simulator: &Simulator) -> Result<SequentialClient, BoxError> {
        let pki = simulator.pki();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pki.root_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        let chain = CertificateDer::pem_slice_iter(pki.client_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(pki.client_key_pem.as_bytes())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let addr: SocketAddr = simulator.repository_addr();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .resolve(&pki.server_name, addr)
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(SequentialClient {
            http,
            base: format!("https://{}:{}/qrs", pki.server_name, addr.port()),
            xrfkey: "0123456789abcdef",
            requests: 0,
        })
    }

    async fn send(
        &mut self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::Response, BoxError> {
        self.requests += 1;
        let response = self
            .http
            .request(method, format!("{}/{path}", self.base))
            .query(&[("xrfkey", self.xrfkey)])
            .header("X-Qlik-Xrfkey", self.xrfkey)
            .header(
                "X-Qlik-User",
                "UserDirectory=INTERNAL; UserId=sa_repository",
            )
            .send()
            .await?;
        Ok(response)
    }

    async fn get<T: for<'de> Deserialize<'de>>(&mut self, path: &str) -> Result<T, BoxError> {
        let response = self
            .send(reqwest::Method::GET, path)
            .await?
            .error_for_status()?;
        Ok(serde_json::from_slice(&response.bytes().await?)?)
    }
}

/// The approach of the original script: every allocation unfiltered, the user of each one by one, the decision
/// made locally (by the same engine and policy, so that both clients reclaim the same seats), then one DELETE at
/// a time.
async fn sequential_run(options: &Options) -> Result<RunMeasure, BoxError> {
    progress!("(b) starting a fresh simulator from the same seed");
    let simulator = start_simulator(options).await?;
    let spec = run_policy(&simulator, options.reclaims, options.concurrency);
    let rules = Rules::from_spec(&spec)?;
    let mut client = SequentialClient::new(&simulator)?;
    simulator.clear_records();

    progress!(
        "(b) sequential client: lists, then one GET /qrs/user/{{id}} per allocation, then one DELETE at a time"
    );
    let (cpu0, start) = (process_cpu(), Instant::now());
    let now = simulator.now();
    let mut allocations = Vec::new();
    let mut totals = BTreeMap::new();
    for access_type in rules.access_types() {
        let rows: Vec<AllocationRow> = client
            .get(&format!("license/{}/full", access_type.qrs_entity()))
            .await?;
        totals.insert(access_type, rows.len() as u64);
        allocations.extend(
            rows.into_iter()
                .filter_map(|r| r.into_allocation(access_type)),
        );
    }
    progress!(
        "(b) sequential client: {} allocations listed; fetching their users",
        thousands(allocations.len() as u64)
    );
    let mut users: HashMap<String, UserDetails> = HashMap::new();
    for (n, allocation) in allocations.iter().enumerate() {
        if allocation.user_id.is_empty() || users.contains_key(&allocation.user_id) {
            continue;
        }
        let row: UserRow = client.get(&format!("user/{}", allocation.user_id)).await?;
        users.insert(allocation.user_id.clone(), row.into());
        if (n + 1) % 5_000 == 0 {
            progress!(
                "(b) sequential client: {} of {} users, {:.0} s",
                thousands(n as u64 + 1),
                thousands(allocations.len() as u64),
                start.elapsed().as_secs_f64()
            );
        }
    }
    let decided = plan::decide(&rules, &allocations, &users, &totals, now);
    if let Some(trip) = &decided.breaker {
        return Err(format!("the sequential client's plan tripped the breaker: {trip}").into());
    }
    let reclaims: Vec<(AccessType, String)> = decided
        .reclaims()
        .map(|d| (d.allocation.access_type, d.allocation.id.clone()))
        .collect();
    progress!(
        "(b) sequential client: deleting {} seats one at a time",
        thousands(reclaims.len() as u64)
    );
    for (access_type, id) in &reclaims {
        let response = client
            .send(
                reqwest::Method::DELETE,
                &format!("license/{}/{id}", access_type.qrs_entity()),
            )
            .await?;
        let status = response.status();
        if !(status.is_success() || status == reqwest::StatusCode::NOT_FOUND) {
            return Err(format!("DELETE {id} answered {status}").into());
        }
    }
    let (wall, cpu) = (start.elapsed(), process_cpu() - cpu0);
    let mut measure = RunMeasure::from_simulator(&simulator, wall, cpu);
    if measure.request_total != client.requests {
        return Err(format!(
            "the client sent {} requests but the simulator recorded {}",
            client.requests, measure.request_total
        )
        .into());
    }
    measure.allocations_seen = allocations.len() as u64;
    measure.candidates = decided.totals().candidates;
    simulator.shutdown().await;
    Ok(measure)
}

async fn bench_run(options: &Options, out: &mut String) -> Result<serde_json::Value, BoxError> {
    let product = product_run(options).await?;
    let sequential = sequential_run(options).await?;

    let ratio = sequential.wall.as_secs_f64() / product.wall.as_secs_f64();
    let same_count = product.deleted.len() == sequential.deleted.len();
    let same_seats = product.deleted == sequential.deleted;
    let ratio_ok = ratio >= 5.0;
    if !same_count {
        return Err(format!(
            "the two clients deleted different numbers of seats: product {}, sequential {}",
            product.deleted.len(),
            sequential.deleted.len()
        )
        .into());
    }

    let _ = writeln!(
        out,
        "(b) One enforcing run against the simulator: {} users, {} ms latency per request, seed {}",
        thousands(options.users as u64),
        options.latency.as_millis(),
        options.seed
    );
    let _ = writeln!(
        out,
        "    policy     professional + analyzer 30 days, grace 14, exclude sa_*/VIP/Exempt/RootAdmin; maxReclaimsPerRun {}, maxReclaimPercent 100",
        options.reclaims
    );
    let _ = writeln!(
        out,
        "    product    run::execute, concurrency {}: wall {:8.2} s, {:>6} requests ({} DELETE), {} seats deleted, process CPU {:.2} s",
        options.concurrency,
        product.wall.as_secs_f64(),
        thousands(product.request_total),
        thousands(product.deletes),
        thousands(product.deleted.len() as u64),
        product.process_cpu.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "               read {} inactive allocations (filtered by QRS), {} candidates",
        thousands(product.allocations_seen),
        thousands(product.candidates)
    );
    product.describe(out);
    let _ = writeln!(
        out,
        "    sequential one request at a time:    wall {:8.2} s, {:>6} requests ({} DELETE), {} seats deleted, process CPU {:.2} s",
        sequential.wall.as_secs_f64(),
        thousands(sequential.request_total),
        thousands(sequential.deletes),
        thousands(sequential.deleted.len() as u64),
        sequential.process_cpu.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "               read {} allocations (unfiltered), {} candidates",
        thousands(sequential.allocations_seen),
        thousands(sequential.candidates)
    );
    sequential.describe(out);
    let _ = writeln!(
        out,
        "    speed-up   {ratio:.1}x   target >= 5x   {}",
        verdict(ratio_ok)
    );
    let _ = writeln!(
        out,
        "    seats      both deleted {}; same allocation ids: {}",
        thousands(product.deleted.len() as u64),
        if same_seats { "yes" } else { "NO" }
    );

    Ok(json!({
        "users": options.users,
        "latencyMs": options.latency.as_millis() as u64,
        "seed": options.seed,
        "maxReclaimsPerRun": options.reclaims,
        "concurrency": options.concurrency,
        "product": product.json(),
        "sequential": sequential.json(),
        "speedup": ratio,
        "sameSeatCount": same_count,
        "sameSeats": same_seats,
        "targets": {"speedupAtLeast5x": ratio_ok},
    }))
}

// ---------------------------------------------------------------------------------------------------------------

fn main() {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "qlik-license-reclaimer benchmarks{} ({} CPUs)",
        if options.quick { ", quick" } else { "" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(out);
    let mut report = serde_json::Map::new();
    report.insert("quick".into(), json!(options.quick));

    // (a) runs first, on the main thread, before any runtime thread exists.
    if options.decide {
        report.insert("decide".into(), bench_decide(&options, &mut out));
        let _ = writeln!(out);
    }

    if options.run {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        match runtime.block_on(bench_run(&options, &mut out)) {
            Ok(value) => {
                report.insert("run".into(), value);
            }
            Err(e) => {
                print!("{out}");
                eprintln!("benchmark (b) failed: {e}");
                std::process::exit(1);
            }
        }
    }

    if options.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::Value::Object(report)).expect("JSON")
        );
    } else {
        print!("{out}");
    }
}
