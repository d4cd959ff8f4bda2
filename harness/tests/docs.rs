//! The docs stay true: `docs/suite-format.md` names every key of the suite schema, the examples of
//! it and of the README are still in the suites they quote, every command and `run` flag of the
//! CLI is documented, the layout table of `docs/architecture.md` is the source tree, and the
//! README stays a page a newcomer reads, about the product rather than the history of its work.

use std::collections::BTreeSet;

use std::process::Command;

mod common;
use common::root;

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn schema_keys(v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(o) => {
            if let Some(props) = o.get("properties").and_then(|p| p.as_object()) {
                out.extend(props.keys().cloned());
            }
            o.values().for_each(|v| schema_keys(v, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| schema_keys(v, out)),
        _ => {}
    }
}

#[test]
fn the_format_reference_names_every_key_of_the_schema() {
    let schema: serde_json::Value =
        serde_json::from_str(&read("harness/suite.schema.json")).unwrap();
    let mut keys = BTreeSet::new();
    schema_keys(&schema, &mut keys);
    let doc = read("docs/suite-format.md");
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")) && !doc.contains(&format!("`{k}:")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/suite-format.md does not explain {missing:?}"
    );
}

#[test]
fn every_quoted_example_is_still_in_its_suite() {
    assert!(quoted_examples("docs/suite-format.md") >= 15);
    assert!(quoted_examples("README.md") >= 1);
}

/// Checks every `yaml` block of a page against the file its first line names (`# from …`), and
/// counts those blocks.
fn quoted_examples(page: &str) -> usize {
    let doc = read(page);
    let mut blocks = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let body = block.split("```").next().unwrap();
        let mut lines = body.lines();
        let first = lines.next().unwrap_or_default();
        let Some(source) = first.strip_prefix("# from ") else {
            assert_eq!(
                first, "# illustration",
                "an example names neither its source nor itself an illustration"
            );
            continue;
        };
        let text = read(source.trim());
        let have: BTreeSet<&str> = text.lines().map(str::trim).collect();
        for line in lines.map(str::trim).filter(|l| !l.is_empty()) {
            assert!(
                have.contains(line),
                "{page} quotes `{line}` from {source}, which no longer has it"
            );
        }
        blocks += 1;
    }
    blocks
}

/// Every page of the docs, README first.
fn all_docs() -> String {
    let mut pages: Vec<_> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    let mut text = read("README.md");
    for page in pages {
        text += "\n";
        text += &std::fs::read_to_string(page).unwrap();
    }
    text
}

#[test]
fn the_readme_is_read_in_ten_minutes_and_links_only_to_pages_that_exist() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= 150,
        "README.md has {lines} lines; move detail to docs/"
    );
    let link = regex::Regex::new(r"\]\((docs/[^)#]+)").unwrap();
    for target in link.captures_iter(&readme).map(|c| c[1].to_string()) {
        assert!(
            root().join(&target).exists(),
            "README links to {target}, which does not exist"
        );
    }
}

#[test]
fn the_docs_speak_of_the_product_not_of_the_history_of_its_work() {
    let history = regex::Regex::new(r"(?i)\b(stop|issue|session) \d+\b").unwrap();
    let found: Vec<String> = all_docs()
        .lines()
        .filter(|l| history.is_match(l))
        .map(|l| l.chars().take(120).collect())
        .collect();
    assert!(found.is_empty(), "history in README/docs: {found:#?}");
}

fn help(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?}");
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[test]
fn every_command_and_run_flag_is_documented() {
    let docs = all_docs();
    let top = help(&["--help"]);
    let commands: Vec<&str> = top
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 6, "{commands:?}");
    // Only the options' own lines (`  -j, --jobs <N>`), not flags their help mentions.
    let option = regex::Regex::new(r"(?m)^\s+(?:-\w, )?(--[a-z][a-z-]*)").unwrap();
    for c in &commands {
        assert!(
            docs.contains(&format!("stackcheck {c}")),
            "`stackcheck {c}` is not in the README or docs/"
        );
        let h = help(&[c, "--help"]);
        for flag in option.captures_iter(&h).map(|c| c.get(1).unwrap().as_str()) {
            if flag == "--help" || flag == "--version" {
                continue;
            }
            assert!(
                docs.contains(flag),
                "`stackcheck {c} {flag}` is not in the README or docs/"
            );
        }
    }
}

/// The layout table of `docs/architecture.md` is the source tree: every module of `harness/src`
/// has a row, every file of a module folder is named in its folder's row, and no row names a file
/// that is gone.
#[test]
fn the_layout_table_matches_the_source_tree() {
    let readme = read("docs/architecture.md");
    let rows: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("| `harness/src/"))
        .collect();
    let src = root().join("harness/src");
    let named = regex::Regex::new(r"`([a-z_]+\.rs)`").unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let row = rows
                .iter()
                .find(|r| r.starts_with(&format!("| `harness/src/{name}/`")))
                .unwrap_or_else(|| {
                    panic!("docs/architecture.md layout: no row for harness/src/{name}/")
                });
            for file in std::fs::read_dir(&path).unwrap() {
                let file = file.unwrap().file_name().to_string_lossy().into_owned();
                assert!(
                    row.contains(&format!("`{file}`")),
                    "docs/architecture.md layout: the row of harness/src/{name}/ does not name `{file}`"
                );
            }
            for file in named.captures_iter(row).map(|c| c[1].to_string()) {
                assert!(
                    path.join(&file).exists(),
                    "docs/architecture.md layout names harness/src/{name}/{file}, which does not exist"
                );
            }
        } else {
            assert!(
                rows.iter()
                    .any(|r| r.contains(&format!("`harness/src/{name}`"))
                        || (r.starts_with("| `harness/src/lib.rs`")
                            && r.contains(&format!("`{name}`")))),
                "docs/architecture.md layout: no row names harness/src/{name}"
            );
        }
    }
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut todo = vec![root().join("harness/src"), root().join("harness/tests")];
    let mut long = Vec::new();
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                if lines > 600 {
                    long.push(format!("{} ({lines} lines)", path.display()));
                }
            }
        }
    }
    assert!(long.is_empty(), "split these by concept: {long:?}");
}

/// The public API's docs (`stackcheck::nextest`, `stackcheck::Stack` and the rest)
/// build as docs.rs would build them, without a warning (`missing_docs` included, and no link to
/// an item a reader cannot see).
#[test]
fn the_public_api_docs_build_without_warnings() {
    let out = common::cargo()
        .args(["doc", "--no-deps", "--offline", "-p", "stackcheck"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::text(&out));
}
