//! The shape of the house stays true: the host's crates depend on each
//! other in one direction only, `config` stays a leaf above the contract
//! (no wasmtime, tokio, axum or clap anywhere below it), the plugins know
//! only the contract and the SDK, and inside every crate the top-level
//! modules import each other without a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The host's crates and their layer: a crate may depend only on crates of
/// a lower layer (and never sideways).
const LAYERS: &[(&str, u8)] = &[
    ("ytdlp-contract", 0),
    ("ytdlp-host-config", 1),
    ("ytdlp-host-text", 1),
    ("ytdlp-host-store", 1),
    ("ytdlp-host-plugin-host", 2),
    ("ytdlp-host-ytdlp", 2),
    ("ytdlp-host-core", 3),
    ("ytdlp-host-service", 4),
    ("ytdlp-host", 5),
];

/// What guests (plugins, fixtures) may depend on in the workspace.
const GUEST_MAY_USE: &[&str] = &["ytdlp-contract", "ytdlp-plugin-sdk"];

/// Crates that must never be below `config` (or `contract`).
const NOT_IN_LEAVES: &[&str] = &["wasmtime", "tokio", "axum", "clap"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the workspace root")
        .to_path_buf()
}

fn metadata() -> Value {
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(workspace())
        .args(["metadata", "--format-version", "1", "--locked"])
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON")
}

fn layer(name: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

/// (package, its workspace dependencies that are not dev-dependencies).
fn workspace_edges(meta: &Value) -> Vec<(String, String, Vec<String>)> {
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let names: BTreeSet<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| members.contains(p["id"].as_str().unwrap()))
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| members.contains(p["id"].as_str().unwrap()))
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null() || d["kind"] == "build")
                .map(|d| d["name"].as_str().unwrap().to_string())
                .filter(|d| names.contains(d))
                .collect();
            (
                p["name"].as_str().unwrap().to_string(),
                p["manifest_path"].as_str().unwrap().to_string(),
                deps,
            )
        })
        .collect()
}

#[test]
fn crates_depend_downwards_only() {
    let meta = metadata();
    let mut wrong = Vec::new();
    let mut seen = BTreeSet::new();
    for (name, manifest, deps) in workspace_edges(&meta) {
        seen.insert(name.clone());
        let guest = manifest.contains("/plugins/") || manifest.contains("/test-components/");
        for dep in deps {
            match (layer(&name), layer(&dep)) {
                (Some(a), Some(b)) if b >= a => {
                    wrong.push(format!("{name} (layer {a}) -> {dep} (layer {b})"))
                }
                (Some(_), None) => wrong.push(format!(
                    "{name} -> {dep}: a host crate depends on a plugin or the harness"
                )),
                (None, _) if guest && !GUEST_MAY_USE.contains(&dep.as_str()) => wrong.push(
                    format!("{name} -> {dep}: plugins may use only {GUEST_MAY_USE:?}"),
                ),
                (None, _) if !guest => wrong.push(format!(
                    "{name} -> {dep}: the harness depends on no workspace crate"
                )),
                _ => {}
            }
        }
    }
    for (name, _) in LAYERS {
        assert!(
            seen.contains(*name),
            "no crate `{name}` in the workspace: update LAYERS"
        );
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the direction:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn config_and_contract_pull_in_no_runtime_and_no_cli_library() {
    let meta = metadata();
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: BTreeMap<&str, Vec<&str>> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null() || k["kind"] == "build")
                })
                .map(|d| d["pkg"].as_str().unwrap())
                .collect();
            (n["id"].as_str().unwrap(), deps)
        })
        .collect();
    for leaf in ["ytdlp-host-config", "ytdlp-contract"] {
        let start = name_of
            .iter()
            .find(|(_, n)| **n == leaf)
            .map(|(id, _)| *id)
            .expect("the crate");
        let mut todo = vec![start];
        let mut closure = BTreeSet::new();
        while let Some(id) = todo.pop() {
            if closure.insert(id) {
                todo.extend(nodes.get(id).into_iter().flatten().copied());
            }
        }
        let bad: Vec<&str> = closure
            .iter()
            .map(|id| name_of[id])
            .filter(|n| {
                NOT_IN_LEAVES
                    .iter()
                    .any(|x| n == x || n.starts_with(&format!("{x}-")))
            })
            .collect();
        assert!(bad.is_empty(), "{leaf} depends on {bad:?}");
    }
}

/// `crate::NAME` references in a Rust source, `use crate::{a, b::c}` too.
fn crate_refs(src: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = src;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + 7..];
        // `$crate::`, `ytdlp_crate::`: not this crate's paths.
        if before.is_some_and(|c| c == '$' || c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let head: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !head.is_empty() {
                    out.insert(head);
                }
            }
        } else {
            let head: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !head.is_empty() {
                out.insert(head);
            }
        }
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// The top-level modules of a crate (`src/NAME.rs`, `src/NAME/`), each with
/// the top-level modules it refers to through `crate::`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let p = e.path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if ["lib", "main"].contains(&name.as_str()) {
            continue;
        }
        let files = if p.is_dir() {
            rust_files(&p)
        } else if p.extension().is_some_and(|x| x == "rs") {
            vec![p.clone()]
        } else {
            continue;
        };
        let refs = graph.entry(name.clone()).or_default();
        for f in files {
            refs.extend(crate_refs(&std::fs::read_to_string(&f).unwrap()));
        }
        refs.remove(&name);
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for refs in graph.values_mut() {
        refs.retain(|r| modules.contains(r));
    }
    graph
}

/// A circle in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut cycle = path[at..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_crate_has_an_import_circle_between_its_modules() {
    let crates = workspace().join("crates");
    let mut checked = 0;
    for e in std::fs::read_dir(&crates).unwrap().flatten() {
        let src = e.path().join("src");
        if !src.is_dir() {
            continue;
        }
        let graph = module_graph(&src);
        if let Some(cycle) = find_cycle(&graph) {
            panic!(
                "{}: modules import each other in a circle: {}",
                e.path().display(),
                cycle.join(" -> ")
            );
        }
        checked += 1;
    }
    assert!(checked >= LAYERS.len(), "only {checked} crates checked");
}

#[test]
fn the_cycle_check_finds_a_circle() {
    // The check itself can fail: a made-up graph with a circle is caught,
    // and `use crate::{a, b::c}` is read as two references.
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    g.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&g), None);
    assert_eq!(
        crate_refs("use crate::{a, b::c};\nlet x = crate::d::e; $crate::f; my_crate::g;"),
        BTreeSet::from(["a".to_string(), "b".to_string(), "d".to_string()])
    );
}
