//! The image, built here without a daemon (`scripts/build-image.sh`: buildah, chroot isolation, vfs storage, from
//! scratch). With `QLR_RELEASE_TESTS=1` (minutes on 2 cores: a release build) the archive is built and inspected (user,
//! entrypoint, no shell, one binary and its SBOM, size) and `demo` runs inside it as uid 65532. Without it, the
//! image's definitions are checked: what the script builds and what the Dockerfile builds for users' own CI.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::Failed;
use serde_json::Value as Json;

use crate::control_plane::ControlPlane;
use crate::release_binary::{embedded_dependencies, release_binary};
use crate::tools::{built_by, describe, read, repo_path};
use crate::{TestResult, register};

/// The image's target size.
const MAX_IMAGE_BYTES: u64 = 20 * 1000 * 1000;

/// The instructions of a Containerfile's last stage, without comments, ARGs and LABELs (which say nothing of the
/// content).
fn last_stage(text: &str) -> Vec<String> {
    let mut stage = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            stage.clear();
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        stage.push(line.to_string());
    }
    stage
        .into_iter()
        .filter(|l| {
            !l.starts_with("ARG ")
                && !l.starts_with("LABEL ")
                && !l.starts_with("org.opencontainers")
        })
        .collect()
}

fn the_image_is_one_binary_on_scratch_run_as_65532(_: &ControlPlane) -> TestResult {
    // The script's Containerfile and the Dockerfile's last stage build the same content.
    let ours = last_stage(&read(&repo_path("scripts/image/Containerfile"))?);
    let users = last_stage(&read(&repo_path("Dockerfile"))?);
    let strip_from = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                l.replace(
                    "--from=builder /qlik-license-reclaimer ",
                    "qlik-license-reclaimer ",
                )
                .replace("--from=builder /sbom.cdx.json ", "sbom.cdx.json ")
            })
            .collect()
    };
    if strip_from(&ours) != strip_from(&users) {
        return Err(format!(
            "the Dockerfile's last stage differs from scripts/image/Containerfile:\n{users:#?}\n{ours:#?}"
        )
        .into());
    }
    for wanted in [
        "FROM scratch",
        "USER 65532:65532",
        "ENTRYPOINT [\"/usr/local/bin/qlik-license-reclaimer\"]",
    ] {
        if !ours.iter().any(|l| l == wanted) {
            return Err(format!("scripts/image/Containerfile lacks {wanted}").into());
        }
    }
    if !std::env::var("QLR_RELEASE_TESTS").is_ok_and(|v| v == "1") {
        return Ok(());
    }
    let archive = build_image()?;
    inspect(&archive)?;
    run_demo_inside(&archive)
}
register!(the_image_is_one_binary_on_scratch_run_as_65532);

fn build_image() -> Result<PathBuf, Failed> {
    built_by("scripts/build-image.sh")
}

fn blob(root: &Path, digest: &str) -> Result<PathBuf, Failed> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("digest {digest}"))?;
    Ok(root.join("blobs/sha256").join(hex))
}

fn json_at(path: &Path) -> Result<Json, Failed> {
    Ok(serde_json::from_slice(&std::fs::read(path)?)?)
}

/// The archive's configuration and files: uid 65532, the entrypoint, no shell, nothing but the binary and the SBOM,
/// all owned by root and read-only to the user the image runs as (no writable root).
fn inspect(archive: &Path) -> TestResult {
    let size = std::fs::metadata(archive)?.len();
    eprintln!(
        "image {}: {size} bytes ({:.1} MB)",
        archive.display(),
        size as f64 / 1e6
    );
    if size > MAX_IMAGE_BYTES {
        return Err(format!("the image is {size} bytes, over {MAX_IMAGE_BYTES}").into());
    }
    let dir = tempfile::tempdir()?;
    let untar = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(dir.path())
        .output()?;
    if !untar.status.success() {
        return Err(format!("tar -xf {}: {}", archive.display(), describe(&untar)).into());
    }
    let index = json_at(&dir.path().join("index.json"))?;
    let manifest = json_at(&blob(
        dir.path(),
        index["manifests"][0]["digest"].as_str().unwrap_or_default(),
    )?)?;
    let config = json_at(&blob(
        dir.path(),
        manifest["config"]["digest"].as_str().unwrap_or_default(),
    )?)?;
    let runtime = &config["config"];
    if runtime["User"] != "65532:65532"
        || runtime["Entrypoint"] != serde_json::json!(["/usr/local/bin/qlik-license-reclaimer"])
        || runtime["Cmd"] != serde_json::json!(["controller"])
    {
        return Err(format!("image configuration: {runtime}").into());
    }
    let mut files = Vec::new();
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        let path = blob(dir.path(), layer["digest"].as_str().unwrap_or_default())?;
        let listed = Command::new("tar")
            .args(["--numeric-owner", "-tvf"])
            .arg(&path)
            .output()?;
        if !listed.status.success() {
            return Err(format!("tar -tvf {}: {}", path.display(), describe(&listed)).into());
        }
        for entry in String::from_utf8_lossy(&listed.stdout).lines() {
            // `-rwxr-xr-x 0/0 23050664 2026-12-01 10:45 usr/local/bin/qlik-license-reclaimer`
            let fields: Vec<&str> = entry.split_whitespace().collect();
            let (Some(mode), Some(owner), Some(name)) =
                (fields.first(), fields.get(1), fields.last())
            else {
                return Err(format!("cannot read the layer listing line {entry:?}").into());
            };
            // Owned by root and writable by nobody else: uid 65532 cannot write the root file system.
            let writable_by_others = mode.get(5..6) == Some("w") || mode.get(8..9) == Some("w");
            if *owner != "0/0" || writable_by_others {
                return Err(format!("{name} is {mode} {owner}: uid 65532 could write it").into());
            }
            if !name.ends_with('/') {
                files.push(name.to_string());
            }
        }
    }
    files.sort();
    let expected = [
        "usr/local/bin/qlik-license-reclaimer",
        "usr/share/doc/qlik-license-reclaimer/sbom.cdx.json",
    ];
    if files != expected {
        return Err(
            format!("the image holds {files:?}, expected only {expected:?} (no shell)").into(),
        );
    }
    let mut inside = None;
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        let path = blob(dir.path(), layer["digest"].as_str().unwrap_or_default())?;
        let extracted = Command::new("tar")
            .arg("-xOf")
            .arg(&path)
            .arg(expected[1])
            .output()?;
        if extracted.status.success() {
            inside = Some(extracted.stdout);
        }
    }
    sbom_lists_what_the_binary_embeds(archive, &inside.ok_or("no SBOM in the image's layers")?)
}

/// The CycloneDX SBOM beside the archive is the one in the image, and it agrees with the list the release binary
/// embeds (cargo auditable): every crate the SBOM says is linked is in the binary's list, and every crate the binary
/// lists as a runtime dependency is in the SBOM. (The two tools draw the line around proc-macros differently: the
/// SBOM lists every crate compiled, with those only proc-macros use as scope "excluded".)
fn sbom_lists_what_the_binary_embeds(archive: &Path, inside: &[u8]) -> TestResult {
    let name = archive.to_string_lossy();
    let beside = PathBuf::from(format!(
        "{}.cdx.json",
        name.strip_suffix(".oci.tar").unwrap_or(&name)
    ));
    if std::fs::read(&beside)? != inside {
        return Err(format!("{} differs from the SBOM in the image", beside.display()).into());
    }
    let sbom: Json = serde_json::from_slice(inside)?;
    if sbom["bomFormat"] != "CycloneDX" || sbom["specVersion"] != "1.5" {
        return Err(format!("{} is not a CycloneDX 1.5 SBOM", beside.display()).into());
    }
    let mut listed = BTreeSet::new();
    let mut linked = BTreeSet::new();
    for component in sbom["components"].as_array().into_iter().flatten() {
        let field = |k: &str| component[k].as_str().unwrap_or_default().to_string();
        let crate_ = (field("name"), field("version"));
        if component["purl"] != format!("pkg:cargo/{}@{}", crate_.0, crate_.1) {
            return Err(format!("SBOM component without its package URL: {component}").into());
        }
        if component["scope"] == "required" {
            linked.insert(crate_.clone());
        }
        listed.insert(crate_);
    }
    let embedded = embedded_dependencies(&release_binary()?)?;
    let not_embedded: Vec<_> = linked
        .iter()
        .filter(|c| !embedded.contains_key(*c))
        .collect();
    let not_listed: Vec<_> = embedded
        .iter()
        .filter(|(c, kind)| *kind == "runtime" && !listed.contains(*c))
        .map(|(c, _)| c)
        .collect();
    if !not_embedded.is_empty() || !not_listed.is_empty() || linked.len() < 100 {
        return Err(format!(
            "the SBOM ({} crates, {} linked) and the binary's embedded list disagree: linked but not embedded \
             {not_embedded:?}, embedded as runtime but not in the SBOM {not_listed:?}",
            listed.len(),
            linked.len()
        )
        .into());
    }
    eprintln!(
        "SBOM: {} crates, {} of them linked; the binary embeds {}",
        listed.len(),
        linked.len(),
        embedded.len()
    );
    Ok(())
}

/// `demo` inside the image, as uid 65532, with chroot isolation (no daemon).
fn run_demo_inside(archive: &Path) -> TestResult {
    let storage = repo_path("target/image");
    let buildah = |args: &[&str]| {
        Command::new("buildah")
            .arg("--storage-driver")
            .arg("vfs")
            .arg("--root")
            .arg(storage.join("storage"))
            .arg("--runroot")
            .arg(storage.join("run"))
            .args(args)
            .output()
    };
    let from = buildah(&[
        "from",
        "--quiet",
        &format!("oci-archive:{}", archive.display()),
    ])?;
    if !from.status.success() {
        return Err(format!("buildah from: {}", describe(&from)).into());
    }
    let container = String::from_utf8_lossy(&from.stdout).trim().to_string();
    let demo = buildah(&[
        "run",
        "--isolation",
        "chroot",
        "--user",
        "65532:65532",
        &container,
        "--",
        "/usr/local/bin/qlik-license-reclaimer",
        "demo",
        "--users",
        "50",
    ])?;
    let _ = buildah(&["rm", &container]);
    let stdout = String::from_utf8_lossy(&demo.stdout);
    if !demo.status.success() || !stdout.contains("DRY RUN") {
        return Err(format!("demo inside the image: {}", describe(&demo)).into());
    }
    Ok(())
}
