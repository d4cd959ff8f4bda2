//! The CI templates (`ci/templates/`, issue 7 item 3) parse as YAML, every command they run exists
//! (scripts in the repository, `stackcheck` subcommands and flags, the nextest profile and test
//! target), and their sharding really splits the suites: the partitions of the per-suite trials
//! are disjoint and together hold every suite.

use std::collections::BTreeSet;

use std::process::Command;

mod common;
use common::root;

fn yaml(rel: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(root().join(rel)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

/// Every shell line the template runs: GitHub `run:` steps, GitLab `script`/`before_script`.
fn commands(doc: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => out.extend(
            s.lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty()),
        ),
        serde_json::Value::Array(a) => {
            out.extend(a.iter().filter_map(|l| l.as_str()).map(str::to_string))
        }
        _ => {}
    };
    let jobs = doc.get("jobs").unwrap_or(doc); // GitHub nests jobs; GitLab keeps them top-level
    for (_, job) in jobs.as_object().unwrap() {
        if let Some(steps) = job.get("steps").and_then(|s| s.as_array()) {
            steps
                .iter()
                .filter_map(|s| s.get("run"))
                .for_each(&mut push);
        }
        for key in ["script", "before_script"] {
            if let Some(v) = job.get(key) {
                push(v);
            }
        }
    }
    out
}

fn check_command(template: &str, line: &str, nextest_profiles: &str) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let skip_sudo = words
        .iter()
        .position(|w| {
            *w == "bash" || w.starts_with("target/") || *w == "cargo" || *w == "cat" || *w == "echo"
        })
        .unwrap_or(0);
    let words = &words[skip_sudo..];
    match words.first().copied() {
        Some("bash") => {
            let script = words[1];
            assert!(
                root().join(script).is_file(),
                "{template}: `{line}`: {script} does not exist"
            );
        }
        Some(bin) if bin.ends_with("stackcheck") => {
            let sub = words[1];
            let help = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
                .args([sub, "--help"])
                .output()
                .unwrap();
            assert!(
                help.status.success(),
                "{template}: `stackcheck {sub}` is no command"
            );
            let help = String::from_utf8_lossy(&help.stdout);
            for flag in words.iter().filter(|w| w.starts_with("--")) {
                assert!(
                    help.contains(flag),
                    "{template}: `stackcheck {sub}` has no {flag}"
                );
            }
        }
        Some("cargo") if words.get(1) == Some(&"nextest") => {
            if let Some(i) = words.iter().position(|w| *w == "--profile") {
                let profile = words[i + 1];
                assert!(
                    nextest_profiles.contains(&format!("[profile.{profile}]")),
                    "{template}: nextest profile `{profile}` is not in .config/nextest.toml"
                );
            }
            if let Some(i) = words.iter().position(|w| *w == "--test") {
                let target = words[i + 1];
                assert!(
                    root().join(format!("harness/tests/{target}.rs")).is_file(),
                    "{template}: no test target `{target}`"
                );
            }
        }
        Some("cargo") => {
            assert!(
                ["build", "install"].contains(&words[1]),
                "{template}: unexpected cargo command `{line}`"
            );
        }
        _ => {}
    }
}

#[test]
fn ci_templates_parse_and_call_commands_that_exist() {
    let profiles = std::fs::read_to_string(root().join(".config/nextest.toml")).unwrap();
    for template in [
        "ci/templates/github-actions.yml",
        "ci/templates/gitlab-ci.yml",
    ] {
        let doc = yaml(template);
        let cmds = commands(&doc);
        assert!(
            cmds.iter().any(|c| c.contains("--partition count:")),
            "{template} does not shard: {cmds:#?}"
        );
        assert!(
            cmds.iter().any(|c| c.contains("bash ci/engine.sh")),
            "{template} installs no engine"
        );
        let text = std::fs::read_to_string(root().join(template)).unwrap();
        assert!(
            text.contains("DOCKER_HOST"),
            "{template} says nothing of remote engines"
        );
        assert!(text.contains("junit"), "{template} uploads no JUnit");
        for line in &cmds {
            check_command(template, line, &profiles);
        }
    }
}

fn partition(k: u32, n: u32) -> BTreeSet<String> {
    let out = common::cargo()
        .args([
            "nextest",
            "list",
            "--profile",
            "ci",
            "--test",
            "conformance",
            "--partition",
        ])
        .arg(format!("count:{k}/{n}"))
        .args(["--message-format", "oneline"])
        .env("STACKCHECK_TRIALS", "suite")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(str::to_string)
        .collect()
}

#[test]
fn nextest_partitions_hand_out_whole_suites_once() {
    let shards: Vec<BTreeSet<String>> = (1..=3).map(|k| partition(k, 3)).collect();
    let all: BTreeSet<String> = shards.iter().flatten().cloned().collect();
    let count: usize = shards.iter().map(BTreeSet::len).sum();
    assert_eq!(count, all.len(), "a suite is in two shards: {shards:?}");
    let suites: BTreeSet<String> = std::fs::read_dir(root().join("suites"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.path()
                .file_stem()
                .map(|s| format!("{}::all", s.to_string_lossy()))
        })
        .collect();
    assert_eq!(all, suites, "the shards together are not every suite");
    assert!(
        shards.iter().all(|s| !s.is_empty()),
        "an idle shard: {shards:?}"
    );
}
