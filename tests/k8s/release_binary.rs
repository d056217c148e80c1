//! The release binary the image holds (`scripts/build-release.sh`): static, small, and needing nothing of the
//! operating system, time zones included. Built and checked only with `QLR_RELEASE_TESTS=1` (minutes on 2 cores);
//! otherwise the behavioural checks run on the debug binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use libtest_mimic::Failed;

use crate::control_plane::ControlPlane;
use crate::tools::{BINARY, built_by, describe, read, repo_path};
use crate::{TestResult, register, run, support};

/// The binary the image holds, built by scripts/build-release.sh (cargo caches it under target/).
pub fn release_binary() -> Result<PathBuf, Failed> {
    built_by("scripts/build-release.sh")
}

/// The crates built for the binary, as `cargo auditable` embeds them (name and version, the binary's own package
/// excluded), each with its kind (`runtime` or `build`): what Trivy, Syft or `cargo audit bin` read from the image.
pub fn embedded_dependencies(binary: &Path) -> Result<BTreeMap<(String, String), String>, Failed> {
    let json = auditable_info::json_from_file(binary, Default::default()).map_err(|e| {
        format!(
            "reading the dependency list cargo auditable embeds in {}: {e}",
            binary.display()
        )
    })?;
    // cargo-auditable's format: `kind` is left out for runtime dependencies, `root` when false.
    let info: serde_json::Value = serde_json::from_str(&json)?;
    let packages = info["packages"]
        .as_array()
        .ok_or("the embedded dependency list has no packages")?;
    let field = |p: &serde_json::Value, key: &str| p[key].as_str().unwrap_or_default().to_string();
    let root = packages
        .iter()
        .find(|p| p["root"] == true)
        .ok_or("the embedded dependency list has no root package")?;
    if field(root, "name") != env!("CARGO_PKG_NAME")
        || field(root, "version") != env!("CARGO_PKG_VERSION")
    {
        return Err(format!("the embedded root package is {root}").into());
    }
    Ok(packages
        .iter()
        .filter(|p| p["root"] != true)
        .map(|p| {
            let kind = p["kind"].as_str().unwrap_or("runtime").to_string();
            ((field(p, "name"), field(p, "version")), kind)
        })
        .collect())
}

/// Whether an ELF executable asks for a dynamic loader (has a PT_INTERP program header).
fn has_interpreter(elf: &[u8]) -> Result<bool, Failed> {
    if elf.get(..5) != Some(b"\x7fELF\x02") {
        return Err("not a 64-bit ELF file".into());
    }
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Err("truncated ELF header".into());
    };
    const PT_INTERP: u32 = 3;
    Ok((0..phnum).any(|i| {
        let at = phoff + i * phentsize;
        elf.get(at..at + 4)
            .is_some_and(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) == PT_INTERP)
    }))
}

/// The image is this binary alone (from scratch); its compressed archive is held under 20 MB by the image test, and
/// the binary itself (uncompressed) under this.
const MAX_BINARY_BYTES: u64 = 30 * 1000 * 1000;

/// The binary needs no OS time zone files: with jiff's bundled database, Europe/Oslo resolves with no
/// zoneinfo at hand, so a run gets as far as the unreachable site (exit 1) rather than refusing the policy (exit 2,
/// as for Mars/Olympus_Mons); it also prints the CRD and runs the demo.
///
/// By default (and in CI, where a release build would take minutes): the debug binary, with TZDIR at an empty
/// directory; the image's static release binary is not checked then. With QLR_RELEASE_TESTS=1: the release binary of
/// scripts/build-release.sh, checked to be static and small, and, when the tests run as
/// root, run as the image runs it: alone in an otherwise empty root directory (no libc, no zoneinfo, no /etc, no
/// shell) as uid 65532.
fn the_binary_needs_no_os_time_zone_files(cp: &ControlPlane) -> TestResult {
    let release = std::env::var("QLR_RELEASE_TESTS").is_ok_and(|v| v == "1");
    let binary = if release {
        let binary = release_binary()?;
        let bytes = std::fs::read(&binary)?;
        let size = bytes.len() as u64;
        eprintln!(
            "release binary {}: {size} bytes ({:.1} MiB)",
            binary.display(),
            size as f64 / (1024.0 * 1024.0)
        );
        if has_interpreter(&bytes)? {
            return Err(format!(
                "{} is dynamically linked; the image (from scratch) has no libc",
                binary.display()
            )
            .into());
        }
        if size > MAX_BINARY_BYTES {
            return Err(
                format!("the release binary is {size} bytes, over {MAX_BINARY_BYTES}").into(),
            );
        }
        let embedded = embedded_dependencies(&binary)?;
        for wanted in ["kube-client", "rustls", "jiff", "reqwest", "ring"] {
            if !embedded
                .iter()
                .any(|((name, _), kind)| name == wanted && kind == "runtime")
            {
                return Err(format!(
                    "the dependency list embedded in {} lacks {wanted}: {embedded:?}",
                    binary.display()
                )
                .into());
            }
        }
        binary
    } else {
        eprintln!(
            "note: checking the debug binary; QLR_RELEASE_TESTS=1 builds the image's release binary \
             (scripts/build-release.sh) and checks that one"
        );
        PathBuf::from(BINARY)
    };

    // Everything the runs read lives in `root`; in the empty-root mode it is the whole file system they see.
    // SAFETY: geteuid(2) has no preconditions.
    let chroot = release && unsafe { libc::geteuid() } == 0;
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    std::fs::create_dir(&root)?;
    let empty_tzdir = dir.path().join("zoneinfo");
    std::fs::create_dir(&empty_tzdir)?;
    let inside = |name: &str| {
        if chroot {
            format!("/{name}")
        } else {
            root.join(name).display().to_string()
        }
    };
    if chroot {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
        std::fs::copy(&binary, root.join("qlik-license-reclaimer"))?;
        eprintln!("running the release binary alone in an empty root directory as uid 65532");
    }
    let command = |args: &[&str]| {
        let mut command = if chroot {
            let mut command = Command::new("chroot");
            command
                .arg("--userspec=65532:65532")
                .arg(&root)
                .arg("/qlik-license-reclaimer");
            command
        } else {
            Command::new(&binary)
        };
        command
            .args(args)
            .env("TZDIR", &empty_tzdir)
            .env_remove("TZ")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        command
    };

    let crd = command(&["crd"]).output()?;
    if !crd.status.success() || crd.stdout != read(&repo_path("deploy/crd.yaml"))?.into_bytes() {
        return Err(format!("`crd` does not print deploy/crd.yaml: {}", describe(&crd)).into());
    }

    let credentials = root.join("credentials");
    run(cp, async {
        let sim = support::known_site().await;
        sim.write_credentials(&credentials)?;
        Ok(())
    })?;
    if chroot {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o755))?;
        for entry in std::fs::read_dir(&credentials)? {
            std::fs::set_permissions(entry?.path(), std::fs::Permissions::from_mode(0o644))?;
        }
    }
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    for (zone, expected) in [("Europe/Oslo", 1), ("Mars/Olympus_Mons", 2)] {
        let name = format!("policy-{expected}.yaml");
        std::fs::write(
            root.join(&name),
            format!(
                "apiVersion: licensing.reclaimer.dev/v1alpha1\nkind: LicenseCleanupPolicy\n\
                 metadata: {{name: oslo, namespace: qlik-ops}}\n\
                 spec:\n  schedule: \"0 3 * * *\"\n  timeZone: {zone}\n  site:\n    \
                 repositoryUrl: https://127.0.0.1:{port}\n    requestTimeoutSeconds: 5\n    \
                 credentialsSecretRef: {{name: qlik}}\n  accessTypes:\n    professional: {{inactiveDays: 30}}\n"
            ),
        )?;
        let output = command(&[
            "run",
            "--policy",
            &inside(&name),
            "--credentials",
            &inside("credentials"),
        ])
        .output()?;
        let names_the_zone = String::from_utf8_lossy(&output.stderr).contains("spec.timeZone");
        if output.status.code() != Some(expected) || names_the_zone != (expected == 2) {
            return Err(format!(
                "time zone {zone} with no zoneinfo: expected exit {expected}, {}",
                describe(&output)
            )
            .into());
        }
    }

    let demo = command(&["demo"]).output()?;
    let report = String::from_utf8_lossy(&demo.stdout);
    if !demo.status.success() || !report.contains("DRY RUN") {
        return Err(format!("`demo` failed: {}", describe(&demo)).into());
    }
    Ok(())
}
register!(the_binary_needs_no_os_time_zone_files);
