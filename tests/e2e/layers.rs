//! The layers the compiler keeps: the decision engine is a crate whose dependencies cannot reach Kubernetes,
//! HTTP or an async runtime, and whose sources touch no file, socket, process or environment.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Crates that would bring I/O into the engine.
const FORBIDDEN: &[&str] = &[
    "kube",
    "kube-client",
    "kube-runtime",
    "k8s-openapi",
    "reqwest",
    "hyper",
    "tokio",
    "lettre",
    "axum",
];

/// Names the engine's sources must not use: each reaches outside the process's memory.
const IO_PATHS: &[&str] = &[
    "std::fs",
    "std::net",
    "std::process",
    "std::env",
    "std::io",
    "std::thread",
];

/// The packages `root` depends on to build (normal dependencies, transitively; not its dev-dependencies).
fn build_closure(metadata: &Value, root: &str) -> HashSet<String> {
    let packages: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id"),
                p["name"].as_str().expect("name"),
            )
        })
        .collect();
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .map(|n| (n["id"].as_str().expect("id"), n))
        .collect();
    let start = packages
        .iter()
        .find(|(_, name)| **name == root)
        .map(|(id, _)| *id)
        .expect("the engine is a workspace member");
    let mut seen = HashSet::new();
    let mut todo = vec![start];
    while let Some(id) = todo.pop() {
        for dep in nodes[id]["deps"].as_array().expect("deps") {
            let normal = dep["dep_kinds"]
                .as_array()
                .expect("dep_kinds")
                .iter()
                .any(|k| k["kind"].is_null());
            let dep_id = dep["pkg"].as_str().expect("pkg");
            if normal && seen.insert(packages[dep_id].to_string()) {
                todo.push(dep_id);
            }
        }
    }
    seen
}

#[test]
fn the_engine_depends_on_no_kubernetes_http_or_runtime_crate() {
    // This machine's platform only: the others' dependencies need not be downloaded to be resolved.
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc runs");
    let rustc = String::from_utf8_lossy(&rustc.stdout);
    let host = rustc
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names the host");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", host])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON");
    let deps = build_closure(&metadata, "reclaimer-engine");
    assert!(deps.contains("jiff"), "the closure is read: {deps:?}");
    let reached: Vec<_> = FORBIDDEN
        .iter()
        .filter(|name| deps.contains(**name))
        .collect();
    assert!(reached.is_empty(), "the engine reaches {reached:?}");
    // The operator itself does reach them, so the walk above would have seen them.
    assert!(build_closure(&metadata, "qlik-license-reclaimer").contains("kube"));
}

#[test]
fn the_engine_sources_do_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/engine/src");
    let mut files = vec![src];
    let mut read = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(
                std::fs::read_dir(&path)
                    .expect("read dir")
                    .map(|e| e.expect("entry").path()),
            );
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        read += 1;
        for name in IO_PATHS {
            assert!(!text.contains(name), "{} uses {name}", path.display());
        }
    }
    assert!(read >= 5, "the engine's sources were found ({read})");
}
