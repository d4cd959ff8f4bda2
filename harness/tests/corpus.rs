//! A corpus of compose shapes public projects use (issue 14 item 9): `fixtures/corpus/` holds 30+
//! compose projects written here in those shapes (web + db + cache, reverse proxies, workers
//! sharing an image, one-shot migrations, monitoring pairs, …). `init` and then `validate` must
//! succeed on every one; those whose images exist offline (or that build their own) must run
//! green. The rest need images from registries this machine cannot reach (issue 15).

use std::path::{Path, PathBuf};

mod common;
use common::{fixture, stackcheck, text};

fn projects() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(fixture("corpus"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("docker-compose.yml").is_file())
        .collect();
    out.sort();
    out
}

/// Whether every image the project runs is built by it or present on the engine.
fn runs_offline(project: &Path) -> bool {
    let o = std::process::Command::new("docker")
        .args(["compose", "-f"])
        .arg(project.join("docker-compose.yml"))
        .args(["config", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let model: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let services = model["services"].as_object().unwrap();
    // An image one service builds is there for the others that run it.
    let built: Vec<&str> = services
        .values()
        .filter(|s| s.get("build").is_some())
        .filter_map(|s| s["image"].as_str())
        .collect();
    services.values().all(|s| {
        s.get("build").is_some()
            || built.contains(&s["image"].as_str().unwrap_or(""))
            || std::process::Command::new("docker")
                .args(["image", "inspect", s["image"].as_str().unwrap_or("")])
                .output()
                .unwrap()
                .status
                .success()
    })
}

#[test]
fn every_corpus_shape_goes_through_init_and_validate_and_the_offline_ones_run_green() {
    let projects = projects();
    assert!(projects.len() >= 30, "{} projects", projects.len());
    let all = tempfile::tempdir().unwrap();
    let runnable = tempfile::tempdir().unwrap();
    let mut offline = 0;
    for p in &projects {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let dir = if runs_offline(p) {
            offline += 1;
            runnable.path()
        } else {
            all.path()
        };
        let suite = dir.join(format!("{name}.yaml"));
        common::init_suite(
            &[p.join("docker-compose.yml")],
            &suite,
            &format!("corpus-{name}"),
        );
    }
    let o = stackcheck(&[
        "validate",
        all.path().to_str().unwrap(),
        runnable.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        offline >= 15,
        "only {offline} of {} projects run offline",
        projects.len()
    );
    common::run_dir_green(runnable.path(), offline);
}
