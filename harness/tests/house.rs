//! The crate's modules keep the order `lib.rs` states: leaves first, each top-level module of
//! `src/` using only modules before it. Counted over `crate::` paths (comments left out, `use
//! crate::{a, b::c}` counted once per module it names), so a new import against the data flow,
//! or a cycle between two modules, fails here with the files that make it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

#[test]
fn every_arrow_between_top_level_modules_follows_the_stated_order() {
    let order = stated_order();
    let modules = top_level_modules();
    let named: BTreeSet<&str> = order.iter().map(String::as_str).collect();
    let found: BTreeSet<&str> = modules.keys().map(String::as_str).collect();
    assert_eq!(
        named, found,
        "lib.rs's `Module order:` line must name every top-level module of src/ once"
    );
    let rank = |m: &str| order.iter().position(|o| o == m);
    let mut against = Vec::new();
    let mut table = String::new();
    for ((from, to), files) in arrows(&modules) {
        table += &format!("{from:>10} -> {to:<10} {}\n", files.len());
        if rank(&to) > rank(&from) {
            let files: BTreeSet<_> = files.iter().collect();
            against.push(format!("{from} -> {to} (in {files:?})"));
        }
    }
    eprintln!("{table}");
    assert!(
        against.is_empty(),
        "arrows against the order `{}`:\n{}",
        order.join(" → "),
        against.join("\n")
    );
}

#[test]
fn the_counting_sees_every_form_of_a_crate_path() {
    let text = "use crate::{engine::{Engine, X}, report};\n// crate::run in a comment\n/// and crate::mutate in docs\nlet x = crate::plan::tests(s); use crate::suite;";
    assert_eq!(
        targets(&strip_comments(text)),
        ["engine", "report", "plan", "suite"]
    );
}

#[test]
fn the_architecture_page_states_the_order_lib_rs_states() {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/architecture.md"
    ))
    .unwrap();
    assert_eq!(
        order_in(&page),
        Some(stated_order()),
        "docs/architecture.md's `Module order:` line differs from lib.rs's"
    );
}

/// The backquoted names on the `Module order:` line of `lib.rs`'s documentation.
fn stated_order() -> Vec<String> {
    let lib = std::fs::read_to_string(Path::new(SRC).join("lib.rs")).unwrap();
    order_in(&lib).expect("lib.rs states `Module order: ` followed by `a` → `b` …")
}

fn order_in(text: &str) -> Option<Vec<String>> {
    let line = text.lines().find_map(|l| l.split_once("Module order:"))?.1;
    Some(
        line.split('→')
            .map(|m| m.trim().trim_matches('`').to_string())
            .collect(),
    )
}

/// Each top-level module of `src/` (a file or a folder; `lib.rs` and `main.rs` are the roots,
/// not modules) with its files.
fn top_level_modules() -> BTreeMap<String, Vec<PathBuf>> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(SRC).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            modules.insert(name, rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main" {
            modules.insert(name, vec![path]);
        }
    }
    modules
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// (from, to) → the files of `from` whose paths name `to`, once per path.
fn arrows(modules: &BTreeMap<String, Vec<PathBuf>>) -> BTreeMap<(String, String), Vec<String>> {
    let mut arrows: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (from, files) in modules {
        for file in files {
            let text = strip_comments(&std::fs::read_to_string(file).unwrap());
            for to in targets(&text) {
                if to != *from && modules.contains_key(&to) {
                    let short = file.strip_prefix(SRC).unwrap_or(file);
                    arrows
                        .entry((from.clone(), to))
                        .or_default()
                        .push(short.display().to_string());
                }
            }
        }
    }
    arrows
}

/// Source without its comment lines (`//`, `///`, `//!`): a module named in prose is no arrow.
fn strip_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment after every `crate::`, and each first segment inside `crate::{…}`.
fn targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (inner, after) = balanced(group);
            out.extend(top_level_items(inner).into_iter().map(first_ident));
            rest = after;
        } else {
            out.push(first_ident(rest));
        }
    }
    out.retain(|t| !t.is_empty());
    out
}

/// The text up to the `}` closing an already opened `{`, and what follows it.
fn balanced(text: &str) -> (&str, &str) {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return (&text[..i], &text[i + 1..]);
                }
            }
            _ => {}
        }
    }
    (text, "")
}

fn top_level_items(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

fn first_ident(text: &str) -> String {
    text.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}
