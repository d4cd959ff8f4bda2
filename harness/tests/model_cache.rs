//! The compose model `validate` reads is cached by everything compose reads to make it. Proof that
//! a hit is served: a tampered cache entry shows up in the verdict. Proof that a changed input is
//! never served from the cache: after each kind of edit the tampered entry is not used.

mod common;

use std::path::Path;
use std::process::Command;

use rstest::rstest;

/// A project that reads every kind of input: an include, an extends file, a service env file, the
/// project's `.env`, and a variable from the environment.
fn project(dir: &Path) {
    let files = [
        ("compose.yml", "include: [inc.yml]\nservices:\n  web:\n    extends: { file: base.yml, service: web }\n    env_file: web.env\n"),
        ("base.yml", "services:\n  web:\n    image: \"app:${TAG}\"\n    command: [\"serve\", \"${MODE_FLAG:-}\"]\n"),
        ("inc.yml", "services:\n  worker:\n    image: worker:1\n"),
        ("web.env", "MODE=dev\n"),
        (".env", "TAG=1\n"),
        (
            "suite.yaml",
            "suite: cache\nstack: { compose: [compose.yml] }\nservices:\n  web: { state: running }\n  worker: { state: running }\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

fn validate(dir: &Path, cache: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(["validate", "suite.yaml"])
        .current_dir(dir)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("MODE_FLAG")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out.status.code(), common::text(&out))
}

/// Every cached model loses its `worker` service: a validate served from the cache says so.
fn tamper(cache: &Path) -> usize {
    let dir = cache.join("stackcheck/models");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let mut model: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        model["services"].as_object_mut().unwrap().remove("worker");
        std::fs::write(&path, model.to_string()).unwrap();
        n += 1;
    }
    n
}

#[rstest]
#[case::the_compose_file(
    "compose.yml",
    "# a comment changes nothing compose makes, but it is an input\n"
)]
#[case::an_extended_file("base.yml", "# edited\n")]
#[case::an_included_file("inc.yml", "# edited\n")]
#[case::a_service_env_file("web.env", "MODE=prod\n")]
#[case::the_project_env_file(".env", "TAG=2\n")]
#[case::a_variable_the_files_read("$MODE_FLAG", "--verbose")]
fn an_edited_input_is_never_served_from_the_cache(#[case] input: &str, #[case] edit: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    project(dir.path());
    let (code, out) = validate(dir.path(), cache.path(), &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(tamper(cache.path()) >= 1, "nothing was cached");
    // Unchanged inputs: served from the (tampered) cache.
    let (code, out) = validate(dir.path(), cache.path(), &[]);
    assert_eq!(code, Some(2), "the cache was not used: {out}");
    assert!(out.contains("worker"), "{out}");
    // One input changed: compose is asked again, and the verdict is the real one.
    let env: Vec<(&str, &str)> = match input.strip_prefix('$') {
        Some(var) => vec![(var, edit)],
        None => {
            let path = dir.path().join(input);
            let mut text = std::fs::read_to_string(&path).unwrap();
            if input.ends_with(".env") {
                text = edit.to_string();
            } else {
                text.push_str(edit);
            }
            std::fs::write(&path, text).unwrap();
            vec![]
        }
    };
    let (code, out) = validate(dir.path(), cache.path(), &env);
    assert_eq!(
        code,
        Some(0),
        "{input} was edited and the old model served: {out}"
    );
}

#[test]
fn cached_models_are_for_the_user_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    project(dir.path());
    let (code, out) = validate(dir.path(), cache.path(), &[]);
    assert_eq!(code, Some(0), "{out}");
    let models = cache.path().join("stackcheck/models");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&models), 0o700);
    for entry in std::fs::read_dir(&models).unwrap() {
        assert_eq!(mode(&entry.unwrap().path()), 0o600);
    }
}
