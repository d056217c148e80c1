//! Peak resident memory of one run, as the product runs it (the `run` command in its own process), against the
//! bundled simulator: a site of 100,000 users, answers of 1 GiB, and a run that reads nearly as many allocations
//! as a run may (`MAX_ALLOCATIONS_PER_RUN`).
//!
//! cargo bench --bench memory                  # the four measurements, a line each on stdout
//! cargo bench --bench memory -- --users N     # another site size
//! cargo bench --bench memory -- --quick       # a smoke run: small sites and 8 MiB answers, in seconds
//!
//! Each run is a child process (the release build of the binary), so its peak is its own (see [`measure`]). The
//! chart's memory limit is 128 MiB.
//!
//! `cargo test` runs this target too (`test = true` in Cargo.toml), with the test build of the binary: started
//! without `--bench`, it runs the quick sizes and fails when a run crashes or writes no report (no memory figure is
//! asserted), so that the benchmark cannot stop working unnoticed.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use qlik_license_reclaimer::demo::demo_policy;
use qlik_license_reclaimer::policy::{AccessTypeRule, LicenseCleanupPolicy};
use qrs_simulator::{Fault, FaultRule, Simulator, SimulatorConfig};

const LIMIT_MIB: f64 = 128.0;

struct Measured {
    exit: i32,
    /// Whether the run wrote a JSON report (a run that failed on a bad answer writes one too).
    reported: bool,
    peak_mib: f64,
    elapsed: Duration,
    allocations: u64,
    message: String,
}

/// Runs `run --policy FILE --credentials DIR --dry-run --output json` and measures its peak resident memory:
/// the kernel's high-water mark of the process (`VmHWM`, which starts afresh at exec), sampled every few
/// milliseconds until the process ends. (`ru_maxrss` would not do: it keeps the parent's size across fork and
/// exec, and this parent holds the simulated site.)
fn measure(dir: &Path) -> Measured {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_qlik-license-reclaimer"))
        .args(["run", "--policy"])
        .arg(dir.join("policy.yaml"))
        .arg("--credentials")
        .arg(dir.join("creds"))
        .args(["--dry-run", "--output", "json"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    let status_path = format!("/proc/{}/status", child.id());
    let sampler = std::thread::spawn(move || {
        let mut peak_kib = 0u64;
        // The file loses its memory lines once the process has exited (a zombie until reaped).
        while let Some(kib) = std::fs::read_to_string(&status_path)
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
        {
            peak_kib = peak_kib.max(kib);
            std::thread::sleep(Duration::from_millis(2));
        }
        peak_kib
    });
    let mut report = String::new();
    let mut stdout = child.stdout.take().expect("piped");
    std::io::Read::read_to_string(&mut stdout, &mut report).expect("report");
    let peak_kib = sampler.join().expect("sampler");
    let status = child.wait().expect("wait");
    let elapsed = started.elapsed();
    let json: serde_json::Value = serde_json::from_str(&report).unwrap_or_default();
    Measured {
        exit: status.code().unwrap_or(-1),
        reported: json.is_object(),
        peak_mib: peak_kib as f64 / 1024.0,
        elapsed,
        allocations: json["totals"]["allocated"].as_u64().unwrap_or_default(),
        message: json["message"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(140)
            .collect(),
    }
}

/// The demo's policy on `sim`, reading every allocation unused for `inactive_days`, reporting only.
fn write_files(sim: &Simulator, dir: &Path, inactive_days: u32) {
    let mut spec = demo_policy(sim.repository_url(), sim.pki().server_name.clone());
    spec.access_types.professional = Some(AccessTypeRule { inactive_days });
    spec.access_types.analyzer = Some(AccessTypeRule { inactive_days });
    spec.limits.max_reclaim_percent = 100;
    spec.limits.max_reclaims_per_run = qlik_license_reclaimer::policy::MAX_RECLAIMS_PER_RUN;
    spec.site.request_timeout_seconds = 600;
    let manifest = serde_yaml::to_string(&LicenseCleanupPolicy::new("bench", spec)).expect("yaml");
    std::fs::write(dir.join("policy.yaml"), manifest).expect("policy");
    sim.write_credentials(&dir.join("creds"))
        .expect("credentials");
}

async fn site(users: usize) -> (Simulator, tempfile::TempDir) {
    eprintln!("[memory bench] generating a site of {users} users");
    let sim = Simulator::start(SimulatorConfig {
        users,
        seed: 7,
        ..Default::default()
    })
    .await
    .expect("simulator");
    (sim, tempfile::tempdir().expect("tempdir"))
}

async fn measured(dir: &Path) -> Measured {
    let path = dir.to_path_buf();
    tokio::task::spawn_blocking(move || measure(&path))
        .await
        .expect("join")
}

fn report(what: &str, m: &Measured) {
    println!(
        "{what:<52} peak RSS {:>7.1} MiB ({}), {:>6.1} s, exit {}, {} allocations; {}",
        m.peak_mib,
        if m.peak_mib < LIMIT_MIB {
            "under the chart's 128 MiB"
        } else {
            "OVER the chart's 128 MiB"
        },
        m.elapsed.as_secs_f64(),
        m.exit,
        m.allocations,
        m.message
    );
}

/// The sites and answers measured.
struct Sizes {
    users: usize,
    answer_bytes: u64,
    /// The site of the last measurement: read with 7 days, as many allocations as a run may read when full size.
    near_cap_users: usize,
}

impl Sizes {
    fn full(users: usize) -> Sizes {
        Sizes {
            users,
            answer_bytes: 1024 * 1024 * 1024,
            near_cap_users: 88_000,
        }
    }

    fn quick() -> Sizes {
        Sizes {
            users: 2_000,
            answer_bytes: 8 * 1024 * 1024,
            near_cap_users: 3_000,
        }
    }
}

/// Every measurement, each reported as it ends; what was measured and how.
async fn measure_all(sizes: &Sizes) -> Vec<(String, Measured)> {
    let mut all = Vec::new();
    let mut done = |what: String, m: Measured| {
        report(&what, &m);
        all.push((what, m));
    };
    // A large site as a policy with the usual 30 days sees it.
    let users = sizes.users;
    let (sim, dir) = site(users).await;
    write_files(&sim, dir.path(), 30);
    done(
        format!("site of {users} users, 30 days"),
        measured(dir.path()).await,
    );

    // Answers of 1 GiB (quick: 8 MiB).
    let size = if sizes.answer_bytes >= 1024 * 1024 * 1024 {
        format!("{} GiB", sizes.answer_bytes / (1024 * 1024 * 1024))
    } else {
        format!("{} MiB", sizes.answer_bytes / (1024 * 1024))
    };
    for (what, one_huge_element) in [
        ("answer of well-formed allocations", false),
        ("answer that is one element", true),
    ] {
        sim.clear_faults();
        sim.inject(
            FaultRule::always(Fault::Huge {
                bytes: sizes.answer_bytes,
                one_huge_element,
            })
            .method("GET")
            .path_contains("professionalaccesstype/full"),
        );
        done(format!("{size} {what}"), measured(dir.path()).await);
    }
    drop(sim);

    // The most a run reads: just under MAX_ALLOCATIONS_PER_RUN inactive allocations (7 days, 88,000 users).
    let users = sizes.near_cap_users;
    let (sim, dir) = site(users).await;
    write_files(&sim, dir.path(), 7);
    let near = if users >= 80_000 {
        " (near the run's cap)"
    } else {
        ""
    };
    done(
        format!("site of {users} users, 7 days{near}"),
        measured(dir.path()).await,
    );
    all
}

/// What `cargo test` runs: the quick sizes, each run ended by itself with a report (0, or 1 on a refused answer),
/// and the sites' runs read allocations. No memory figure is asserted: the test build is not what ships.
fn smoke() -> Result<(), String> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let measured = runtime.block_on(measure_all(&Sizes::quick()));
    for (what, m) in &measured {
        let site = what.starts_with("site");
        if !m.reported || !matches!(m.exit, 0 | 1) || (site && (m.exit != 0 || m.allocations == 0))
        {
            return Err(format!(
                "{what}: exit {}, report {}, {} allocations; {}",
                m.exit, m.reported, m.allocations, m.message
            ));
        }
    }
    Ok(())
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench. Without it, this is `cargo test` (or another harness's arguments): the smoke.
    if !args.iter().any(|a| a == "--bench") {
        let arguments = libtest_mimic::Arguments::from_args();
        let trial = libtest_mimic::Trial::test("memory_bench_smoke", || Ok(smoke()?));
        libtest_mimic::run(&arguments, vec![trial]).exit();
    }
    let users = args
        .iter()
        .position(|a| a == "--users")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000usize);
    let sizes = if args.iter().any(|a| a == "--quick") {
        Sizes::quick()
    } else {
        Sizes::full(users)
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(measure_all(&sizes));
}
