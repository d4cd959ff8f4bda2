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
