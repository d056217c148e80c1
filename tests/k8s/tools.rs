//! Where the tests find the repository, the Cargo target directory and the real tools they drive (helm,
//! promtool), each built once by its script into `<target>/tools/` unless an environment variable names one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use libtest_mimic::Failed;

/// The program's debug binary, as Cargo built it for these tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_qlik-license-reclaimer");

/// A file's text, or a failure that names the file.
pub fn read(path: &Path) -> Result<String, Failed> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()).into())
}

/// What a finished process said, for a failure message.
/// Ok when the command failed and its stderr says `expected`; otherwise `what` is wrong, with the output.
pub fn failed_saying(output: &Output, expected: &str, what: &str) -> Result<(), Failed> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() || !stderr.contains(expected) {
        return Err(format!("{what}: {}", describe(output)).into());
    }
    Ok(())
}

pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A path in the repository.
/// Runs a build script of the repository (`scripts/...`) that prints the path of what it built on stdout (its
/// progress goes to the test's stderr); that path.
pub fn built_by(script: &str) -> Result<PathBuf, Failed> {
    let script = repo_path(script);
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!("{} failed ({})", script.display(), output.status).into());
    }
    Ok(PathBuf::from(String::from_utf8(output.stdout)?.trim()))
}

pub fn repo_path(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The Cargo target directory: `CARGO_TARGET_DIR` if set when the tests run, else the one these tests were built
/// into.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => std::path::absolute(dir).unwrap_or_else(|_| repo_path("target")),
        None => Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| repo_path("target")),
    }
}

/// A tool built by `script` into `<target>/tools/`, or the one the environment variable `variable` names. The
/// scripts return at once when the pinned version is there, and serialise concurrent builds with a lock.
fn tool(variable: &str, script: &str, name: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(variable).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let dir = target_dir().join("tools");
    let script = repo_path(script);
    let status = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !status.success() {
        return Err(format!(
            "{} {} failed ({status}); set {variable} to a {name} binary to use another",
            script.display(),
            dir.display()
        ));
    }
    Ok(dir.join(name))
}

/// [`tool`], looked for once and kept in `cell`.
fn cached(
    cell: &OnceLock<Result<PathBuf, String>>,
    variable: &str,
    script: &str,
    name: &str,
) -> Result<PathBuf, Failed> {
    cell.get_or_init(|| tool(variable, script, name))
        .clone()
        .map_err(Failed::from)
}

/// helm (`helm.sh/helm/v3`'s `cmd/helm`, a few minutes cold), or `QLR_HELM`.
pub fn helm_binary() -> Result<PathBuf, Failed> {
    static HELM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    cached(&HELM, "QLR_HELM", "scripts/helm.sh", "helm")
}

/// promtool from Debian's Prometheus package (no Go build), or `PROMTOOL`.
pub fn promtool() -> Result<PathBuf, Failed> {
    static PROMTOOL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    cached(&PROMTOOL, "PROMTOOL", "scripts/prometheus.sh", "promtool")
}

/// A Lua 5.4 interpreter from Debian's packages (no build), or `QLR_LUA`.
pub fn lua_binary() -> Result<PathBuf, Failed> {
    static LUA: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    cached(&LUA, "QLR_LUA", "scripts/lua.sh", "lua")
}

/// Prometheus from Debian's package, or `PROMETHEUS`.
pub fn prometheus_binary() -> Result<PathBuf, Failed> {
    static PROMETHEUS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    cached(
        &PROMETHEUS,
        "PROMETHEUS",
        "scripts/prometheus.sh",
        "prometheus",
    )
}
