//! The docs stay true (issue 7 item 6, issue 20): `docs/suite-format.md` names every key of the suite
//! schema, its examples are still in the suites they quote, every command and `run` flag of
//! the CLI is documented, and the README's layout table is the source tree.

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
    let doc = read("docs/suite-format.md");
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
                "docs/suite-format.md quotes `{line}` from {source}, which no longer has it"
            );
        }
        blocks += 1;
    }
    assert!(blocks >= 15, "only {blocks} quoted examples");
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
    let docs = format!(
        "{}\n{}\n{}",
        read("README.md"),
        read("docs/writing-a-suite.md"),
        read("docs/suite-format.md")
    );
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

/// The README's layout table is the source tree (issue 20): every module of `harness/src` has a
/// row, every file of a module folder is named in its folder's row, and no row names a file that
/// is gone. Also: no source file is over 600 lines.
#[test]
fn the_layout_table_matches_the_source_tree() {
    let readme = read("README.md");
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
                .unwrap_or_else(|| panic!("README layout: no row for harness/src/{name}/"));
            for file in std::fs::read_dir(&path).unwrap() {
                let file = file.unwrap().file_name().to_string_lossy().into_owned();
                assert!(
                    row.contains(&format!("`{file}`")),
                    "README layout: the row of harness/src/{name}/ does not name `{file}`"
                );
            }
            for file in named.captures_iter(row).map(|c| c[1].to_string()) {
                assert!(
                    path.join(&file).exists(),
                    "README layout names harness/src/{name}/{file}, which does not exist"
                );
            }
        } else {
            assert!(
                rows.iter()
                    .any(|r| r.contains(&format!("`harness/src/{name}`"))
                        || (r.starts_with("| `harness/src/lib.rs`")
                            && r.contains(&format!("`{name}`")))),
                "README layout: no row names harness/src/{name}"
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

/// Issue 21: the public API's docs (`stackcheck::nextest`, `stackcheck::Stack` and the rest)
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
