//! The layers of the crate, held by reading its sources: each rule here is one
//! of `docs/ARCHITECTURE.md`'s, and fails when a file imports across it.

use std::path::PathBuf;

/// Every file under `src/{dir}` with its text.
fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join(dir)];
    let mut found = Vec::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read a source folder") {
                files.push(entry.expect("entry").path());
            }
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a source file");
        found.push((path, text));
    }
    found
}

/// The modules of this crate that `text` names: the first segment of each
/// path from the crate's root, and each item of a group there, so that
/// `{schema, reply}` after the root names `reply` as a path to it would.
fn crate_modules(text: &str) -> Vec<&str> {
    // Spelled in pieces, so this file does not match itself.
    let root = concat!("crate", "::");
    let mut names = Vec::new();
    for (at, _) in text.match_indices(root) {
        let rest = &text[at + root.len()..];
        let Some(group) = rest.strip_prefix('{') else {
            names.push(first_segment(rest));
            continue;
        };
        let (mut depth, mut start) = (0, 0);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth > 0 => depth -= 1,
                ',' | '}' if depth == 0 => {
                    names.push(first_segment(&group[start..i]));
                    if c == '}' {
                        break;
                    }
                    start = i + 1;
                }
                _ => {}
            }
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// The leading identifier of a path.
fn first_segment(path: &str) -> &str {
    let path = path.trim_start();
    let end = path
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(path.len());
    &path[..end]
}

#[test]
fn crate_paths_and_groups_name_their_modules() {
    let text = concat!(
        "use crate",
        "::alpha::x;\nuse crate",
        "::{\n    beta::{y, z},\n    gamma,\n};\nlet v = crate",
        "::delta(1);"
    );
    assert_eq!(crate_modules(text), ["alpha", "beta", "gamma", "delta"]);
}

/// Engines get their inputs handed in: nothing under `src/reply` may reach
/// Redis or the graph, so an engine can be tested and swapped on plain data.
#[test]
fn no_engine_imports_a_module_that_talks_to_redis_or_the_graph() {
    let files = sources("reply");
    for (path, text) in &files {
        for m in crate_modules(text) {
            let banned = ["graph", "store", "connection"].contains(&m);
            assert!(!banned, "{} uses the crate's {m}", path.display());
        }
        // Spelled in pieces, so this file does not match itself.
        let redis = concat!("redis", "::");
        assert!(!text.contains(redis), "{} uses {redis}", path.display());
    }
    let n = files.len();
    assert!(n >= 3, "only {n} files under src/reply");
}

/// The store writes plain data of the lower layer (the usage figures, the
/// conversation's turns): nothing under `src/store` may import an engine,
/// which sits beside it, not below.
#[test]
fn the_store_imports_no_engine() {
    let files = sources("store");
    for (path, text) in &files {
        let engines = crate_modules(text).contains(&"reply");
        assert!(!engines, "{} uses the crate's reply", path.display());
    }
    let n = files.len();
    assert!(n >= 3, "only {n} files under src/store");
}

/// Modules of the layers above the bottom one: the bottom layer (the contract
/// and plain data) uses none of them.
const ABOVE_THE_BOTTOM: &[&str] = &[
    "reply",
    "store",
    "worker",
    "bridge",
    "monitor",
    "graph",
    "connection",
    "config",
];

/// The contract and the plain data under everything import no engine, no Redis
/// operation and nothing of the runtime: a gateway or a dashboard could take
/// them alone.
#[test]
fn the_bottom_layer_imports_nothing_above_it() {
    for file in [
        "schema",
        "conversation.rs",
        "llm_usage.rs",
        "duration.rs",
        "entry.rs",
        "learn",
    ] {
        for (path, text) in sources(file) {
            for m in crate_modules(&text) {
                let above = ABOVE_THE_BOTTOM.contains(&m);
                assert!(!above, "{} uses the crate's {m}", path.display());
            }
        }
    }
}

/// The settings embed the model's table; the model's code never reads the
/// settings back (no cycle between `config` and `reply/llm/config`).
#[test]
fn no_engine_reads_the_settings() {
    for (path, text) in sources("reply") {
        let settings = crate_modules(&text).contains(&"config");
        assert!(!settings, "{} uses the crate's config", path.display());
    }
}

/// The gateway side never reaches into the worker or the control room: what
/// they share (the dead-letter step) is an operation on the contract's keys.
#[test]
fn the_gateway_side_imports_neither_the_worker_nor_the_control_room() {
    let files = sources("bridge");
    for (path, text) in &files {
        for m in crate_modules(text) {
            let above = ["worker", "monitor"].contains(&m);
            assert!(!above, "{} uses the crate's {m}", path.display());
        }
    }
    let n = files.len();
    assert!(n >= 10, "only {n} files under src/bridge");
}

/// The worker knows nothing of the gateway or the control room that run it.
#[test]
fn the_worker_imports_neither_the_gateway_nor_the_control_room() {
    for (path, text) in sources("worker") {
        for m in crate_modules(&text) {
            let above = ["bridge", "monitor"].contains(&m);
            assert!(!above, "{} uses the crate's {m}", path.display());
        }
    }
}

/// The binary's subcommands take what they share from their siblings
/// (`common`, `output`, another subcommand), never from the dispatcher in
/// `cli/mod.rs`, so no import runs back up to it.
#[test]
fn no_subcommand_imports_the_dispatcher() {
    let files = sources("cli");
    let siblings: Vec<String> = files
        .iter()
        .filter_map(|(p, _)| p.file_stem()?.to_str().map(str::to_owned))
        .filter(|stem| stem != "mod")
        .collect();
    for (path, text) in &files {
        if path.file_stem().is_some_and(|s| s == "mod") {
            continue;
        }
        // Spelled in pieces, so this file does not match itself.
        let up = concat!("super", "::");
        for (at, _) in text.match_indices(up) {
            let name = first_segment(&text[at + up.len()..]);
            let sibling = siblings.iter().any(|s| s == name);
            assert!(sibling, "{} uses the dispatcher's {name}", path.display());
        }
    }
    let n = files.len();
    assert!(n >= 5, "only {n} files under src/cli");
}
