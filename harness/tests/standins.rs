//! The offline stand-ins against upstream's image config (issue 14 item 8): a compose file that
//! relies on upstream's WORKDIR, USER, ENTRYPOINT/CMD split or stop signal — `command:` replacing
//! CMD, relative paths, file ownership — must behave the same on the stand-in. Every documented
//! tag is compared, field by field, with `ci/images/upstream.json`; what a stand-in cannot match
//! is listed there with why. Needs the images `ci/images.sh` builds.

mod common;

use serde_json::Value;

fn inspect(tag: &str) -> Value {
    let o = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{json .Config}}", tag])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{tag} is missing: run `bash ci/images.sh` ({})",
        common::text(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A config field in the shape the table uses (absent lists are empty, absent strings blank).
fn field(config: &Value, key: &str) -> Value {
    let list = |v: &Value| -> Value {
        let mut items: Vec<String> = match v {
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            _ => Vec::new(),
        };
        if !v.is_array() {
            items.sort();
        }
        Value::from(items)
    };
    match key {
        "entrypoint" => list(&config["Entrypoint"]),
        "cmd" => list(&config["Cmd"]),
        "exposes" => list(&config["ExposedPorts"]),
        "volumes" => list(&config["Volumes"]),
        "workdir" => Value::from(config["WorkingDir"].as_str().unwrap_or("")),
        "user" => Value::from(config["User"].as_str().unwrap_or("")),
        "stop_signal" => Value::from(config["StopSignal"].as_str().unwrap_or("")),
        other => panic!("ci/images/upstream.json: unknown field `{other}`"),
    }
}

#[test]
fn every_stand_in_has_upstreams_config() {
    let table: Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("ci/images/upstream.json")).unwrap(),
    )
    .unwrap();
    let mut wrong = Vec::new();
    for (tag, want) in table["images"].as_object().unwrap() {
        let config = inspect(tag);
        for (key, value) in want.as_object().unwrap() {
            if key == "deviations" || want["deviations"].get(key).is_some() {
                continue;
            }
            let got = field(&config, key);
            if &got != value {
                wrong.push(format!("{tag} {key}: upstream {value}, stand-in {got}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "stand-ins differ from upstream:\n{}",
        wrong.join("\n")
    );
}

/// `bash ci/images.sh ARGS` from the repository root.
fn images_sh(args: &[&str]) -> std::process::Output {
    std::process::Command::new("bash")
        .arg("ci/images.sh")
        .args(args)
        .current_dir(common::root())
        .output()
        .unwrap()
}

/// The documented tags `ci/images.sh` made ready, by what it printed for each: present already,
/// or tagged to the stand-in it built.
fn made_ready(stdout: &str) -> std::collections::BTreeSet<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("[images] "))
        .filter_map(|l| {
            l.strip_suffix(" present").or_else(|| {
                l.strip_prefix("tagged ")
                    .and_then(|t| t.split(" -> ").next())
            })
        })
        .flat_map(|tags| tags.split(' ').map(str::to_string))
        .collect()
}

/// What a fixture folder's stacks run without building (`image:` of services with no `build:`)
/// and what its Dockerfiles build on (`FROM`, stage names left out).
fn images_needed(fixture: &std::path::Path) -> std::collections::BTreeSet<String> {
    let mut needed = std::collections::BTreeSet::new();
    let pattern = format!("{}/**/*", fixture.display());
    for entry in glob::glob(&pattern).unwrap().map(Result::unwrap) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("Dockerfile") {
            let text = std::fs::read_to_string(&entry).unwrap();
            let mut stages = Vec::new();
            for line in text.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                if words.first().map(|w| w.eq_ignore_ascii_case("FROM")) != Some(true) {
                    continue;
                }
                let image = words.iter().skip(1).find(|w| !w.starts_with("--")).unwrap();
                if !stages.contains(&image.to_string()) {
                    needed.insert(image.to_string());
                }
                if let Some(i) = words.iter().position(|w| w.eq_ignore_ascii_case("AS")) {
                    stages.push(words[i + 1].to_string());
                }
            }
        } else if (name.starts_with("docker-compose") || name.starts_with("compose"))
            && (name.ends_with(".yml") || name.ends_with(".yaml"))
        {
            let o = std::process::Command::new("docker")
                .args(["compose", "-f"])
                .arg(&entry)
                .args(["config", "--no-interpolate", "--format", "json"])
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{}: {}",
                entry.display(),
                common::text(&o)
            );
            let model: Value = serde_json::from_slice(&o.stdout).unwrap();
            for service in model["services"].as_object().unwrap().values() {
                if service.get("build").is_none() {
                    needed.insert(service["image"].as_str().unwrap().to_string());
                }
            }
        }
    }
    needed
}

/// `ci/images.sh --suites SUITE` (what the main job runs for named suites) makes ready every image
/// the suite's stack runs and every base its Dockerfiles build on, for each documented suite alone:
/// a stand-in missing from a stack's list fails here, not in a user's first run.
#[test]
fn images_for_one_suite_cover_everything_its_stack_needs() {
    let mut missing = Vec::new();
    for suite in std::fs::read_dir(common::root().join("suites")).unwrap() {
        let suite = suite.unwrap().path();
        let rel = format!("suites/{}", suite.file_name().unwrap().to_string_lossy());
        let out = images_sh(&["--suites", &rel]);
        assert!(out.status.success(), "{rel}: {}", common::text(&out));
        let ready = made_ready(&String::from_utf8_lossy(&out.stdout));
        let text = std::fs::read_to_string(&suite).unwrap();
        let dirs: std::collections::BTreeSet<&str> = text
            .match_indices("fixtures/")
            .map(|(i, _)| {
                // A folder name as `fixture_dirs_of_suites` in ci/lib.sh reads it.
                let rest = &text[i + "fixtures/".len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect();
        assert!(!dirs.is_empty(), "{rel} names no fixture folder");
        for dir in dirs {
            for image in images_needed(&common::fixture(dir)) {
                if !ready.contains(&image) {
                    missing.push(format!("{rel} (fixtures/{dir}): {image}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ci/images.sh --suites leaves out:\n{}",
        missing.join("\n")
    );
}

/// A suite of a project's own names none of our stacks: only the harness's own images. A path
/// that is not there is refused before anything is looked at or built.
#[test]
fn images_for_a_suite_of_ones_own_and_for_no_suite() {
    let own = images_sh(&["--suites", "fixtures/outside/suite.yaml"]);
    let stdout = String::from_utf8_lossy(&own.stdout);
    assert!(own.status.success(), "{}", common::text(&own));
    assert!(
        stdout.contains("stacks the suites run: none of ours"),
        "{stdout}"
    );
    assert_eq!(
        made_ready(&stdout),
        ["stackcheck/base:bookworm", "stackcheck/probe:1"]
            .map(String::from)
            .into(),
        "{stdout}"
    );

    let all = images_sh(&["--suites", "suites/"]);
    assert!(
        String::from_utf8_lossy(&all.stdout)
            .contains("stacks the suites run: algotrade keeper mt5 peaktrade"),
        "a folder of suites counts every suite in it: {}",
        common::text(&all)
    );

    let none = images_sh(&["--suites", "suites/no-such-suite.yaml"]);
    assert_eq!(none.status.code(), Some(1), "{}", common::text(&none));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no suite at suites/no-such-suite.yaml"),
        "{}",
        common::text(&none)
    );
    assert!(none.stdout.is_empty(), "{}", common::text(&none));
}
