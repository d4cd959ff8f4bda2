//! The docs stay true (issue 7 item 6): `docs/suite-format.md` names every key of the suite
//! schema, its examples are still in the suites they quote, and every command and `run` flag of
//! the CLI is documented.

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
