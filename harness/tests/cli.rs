//! The `stackcheck` binary as users run it: exit codes, positions in errors, JUnit output.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{docker_labelled, root, stackcheck, test_status, text, valid_report};

#[test]
fn malformed_suites_exit_2_with_file_line_column_and_start_nothing() {
    let cases = [
        (
            "unknown-service-key.yaml",
            "unknown-service-key.yaml:5:10: unknown key `stat`; did you mean `state`?",
        ),
        ("wrong-type.yaml", "wrong-type.yaml:6:"),
        ("missing-stack.yaml", "missing required key `stack`"),
    ];
    for (file, expected) in cases {
        let path = format!("harness/tests/hostile/{file}");
        for cmd in ["validate", "run"] {
            // An engine that does not exist: were anything started, the run would report exit 3.
            let o = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
                .args([cmd, &path])
                .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
                .current_dir(root())
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(2), "{cmd} {file}: {}", text(&o));
            assert!(text(&o).contains(expected), "{cmd} {file}: {}", text(&o));
        }
    }
}

#[test]
fn every_shipped_suite_validates() {
    let o = stackcheck(&["validate", "suites/"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("ok: suites/mt5.yaml"));
}

#[test]
fn list_prints_the_names_nextest_and_junit_use() {
    let o = stackcheck(&["list", "suites/mt5.yaml"]);
    assert_eq!(o.status.code(), Some(0));
    let names = String::from_utf8_lossy(&o.stdout);
    for n in [
        "mt5::stack::config",
        "mt5::build::mt5-api:latest",
        "mt5::service::db::state",
        "mt5::network::mt5-net",
        "mt5::checks::feature api health",
        "mt5::teardown::no-leaks",
    ] {
        assert!(names.lines().any(|l| l == n), "{n} missing from:\n{names}");
    }
}

#[test]
fn schema_is_json_with_the_top_level_keys() {
    let o = stackcheck(&["schema"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("schema is JSON");
    let props = v["properties"].as_object().expect("properties");
    for k in [
        "suite", "stack", "images", "services", "networks", "volumes", "checks",
    ] {
        assert!(props.contains_key(k), "{k}");
    }
    assert_eq!(v["required"], serde_json::json!(["suite", "stack"]));
}

#[test]
fn no_engine_exits_3_quickly_and_says_how_to_start_one() {
    let t0 = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(["run", "suites/mt5.yaml"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("ci/engine.sh"), "{}", text(&o));
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_failing_run_exits_1_and_writes_junit_failures() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("out.xml");
    let json = dir.path().join("out.json");
    let summary = dir.path().join("summary.md");
    let o = stackcheck(&[
        "run",
        "fixtures/broken/port-changed/suite.yaml",
        "--junit",
        junit.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report = valid_report(&json);
    assert_eq!(report["status"], "failed");
    let ports = test_status(&report, "broken-port-changed::service::redis::ports");
    assert_eq!(ports["status"], "failed");
    assert_eq!(ports["check"], "service::redis::ports");
    assert!(
        ports["message"]
            .as_str()
            .unwrap()
            .starts_with("expected ports"),
        "{ports}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("## stackcheck: ❌ failed"), "{md}");
    assert!(md.contains("### Failed\n"), "{md}");
    assert!(
        md.contains("\n- `broken-port-changed::service::redis::ports` — expected ports"),
        "{md}"
    );
    let out = text(&o);
    assert!(
        out.contains("FAIL ") && out.contains("broken-port-changed::service::redis::ports"),
        "{out}"
    );
    assert!(
        out.contains("PASS ") && out.contains("broken-port-changed::service::redis::state"),
        "{out}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"<testcase name="broken-port-changed::service::redis::ports""#),
        "{xml}"
    );
    assert!(xml.contains("<failure message=\"expected ports"), "{xml}");
    assert!(
        xml.contains(r#"<testcase name="broken-port-changed::teardown::no-leaks""#),
        "{xml}"
    );
    assert!(xml.contains(r#"failures="1""#), "{xml}");
    for prop in [
        "engine.version",
        "compose.version",
        "image.redis.id",
        "image.redis.name",
    ] {
        assert!(
            xml.contains(&format!(r#"<property name="{prop}" value=""#)),
            "{prop}: {xml}"
        );
    }
}

#[test]
fn ctrl_c_during_bring_up_tears_everything_down() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(["run", "fixtures/broken/never-healthy/suite.yaml"])
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // This process's own resources: other tests may run the same suite at the same time.
    let label = &format!("io.stackcheck.owner-pid={}", child.id());
    // Wait (bounded) until the run has created something, then interrupt it.
    // Generous: the run may first wait for other tests' runs of this fixture (claims).
    let deadline = Instant::now() + Duration::from_secs(600);
    while docker_labelled(label).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the run created nothing within 600 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was interrupted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130), "interrupted runs exit 130 after teardown");
    assert_eq!(
        docker_labelled(label),
        Vec::<String>::new(),
        "the interrupted run left resources behind"
    );
}

#[test]
fn validate_runs_the_policy_without_an_engine_errors_fail_warnings_pass() {
    let out = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(["validate", "fixtures/broken/features-policy/suite.yaml"])
        .current_dir(root())
        // No engine is needed: point the client at nothing.
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    for rule in [
        "no_latest_tags",
        "healthcheck_on_long_running",
        "no_default_credentials",
        "databases_not_on_all_interfaces",
    ] {
        assert!(
            t.contains(&format!("FAIL broken-features-policy::policy::{rule}:")),
            "{rule}: {t}"
        );
    }
    assert!(t.contains("`cache` uses `redis:latest`"), "{t}");
    assert!(t.contains("`web` has no healthcheck"), "{t}");
    assert!(
        t.contains("`api` sets ADMIN_PASSWORD to a literal credential"),
        "{t}"
    );
    assert!(
        t.contains("`cache` publishes 6379:6379 on all interfaces"),
        "{t}"
    );
    assert!(t.contains("warn broken-features-policy::policy::resource_limits: warning: resource_limits: `sealed` has no memory or CPU limit"), "{t}");
    assert!(
        !t.contains("hunter2hunter2"),
        "the credential itself must not be shown: {t}"
    );

    let ok = stackcheck(&["validate", "fixtures/features/suite.yaml"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(
        text(&ok).contains("pass features::policy::no_latest_tags"),
        "{}",
        text(&ok)
    );
}

#[test]
fn list_into_a_closed_pipe_stops_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    // More names than a pipe buffers (64 KiB), so writing must hit the closed pipe.
    let mut args = vec!["list"];
    args.extend(std::iter::repeat_n("suites/", 20));
    let mut child = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(&args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("::"), "{first}");
    // The reader is gone (as `| head -1` does); the rest of the listing hits a closed pipe.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `config_raw` reads the compose files itself where it can; on every compose file we ship, that
/// view of each service's environment must be exactly what `config --no-interpolate` says.
#[test]
fn written_environment_agrees_with_compose_no_interpolate() {
    use stackcheck::engine::ComposeModel;
    let mut files: Vec<PathBuf> =
        glob::glob(&format!("{}/fixtures/**/*compose*.y*ml", root().display()))
            .unwrap()
            .flatten()
            .collect();
    files.sort();
    let mut compared = 0;
    for f in &files {
        let Some(written) = ComposeModel::written_environment(&[f]) else {
            continue;
        };
        let out = Command::new("docker")
            .args(["compose", "--profile", "*", "-f"])
            .arg(f)
            .args(["config", "--format", "json", "--no-interpolate"])
            .output()
            .unwrap();
        if !out.status.success() {
            continue; // a broken fixture compose cannot resolve on purpose
        }
        let compose = ComposeModel::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
        for (name, s) in &compose.services {
            let mine = written.services.get(name).map(|s| &s.environment);
            assert_eq!(
                mine,
                Some(&s.environment),
                "{}: service {name}",
                f.display()
            );
        }
        compared += 1;
    }
    assert!(
        compared >= 8,
        "only {compared} of {} compose files compared",
        files.len()
    );
}

/// Build steps of a `-v` run's output that did work (were not cache hits): BuildKit's
/// `#N [svc k/n] RUN …` without `#N CACHED`, the classic builder's `Step k/n : …` followed by
/// `Running in` or a new layer instead of `Using cache`. The run's own `LABEL io.stackcheck.*`
/// steps are metadata (no layer) and are expected to run.
fn uncached_build_steps(out: &str) -> Vec<String> {
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let mut work = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(rest) = l.strip_prefix('#') {
            let (n, step) = rest.split_once(' ').unwrap_or((rest, ""));
            let is_step = step.starts_with('[')
                && !step.contains("internal]")
                && [" RUN ", " COPY ", " ADD "]
                    .iter()
                    .any(|k| step.contains(k));
            if is_step && !lines.contains(&format!("#{n} CACHED").as_str()) {
                work.push(l.to_string());
            }
        } else if l.starts_with("Step ") && !l.contains(": LABEL io.stackcheck.") {
            let is_fs = [": RUN ", ": COPY ", ": ADD "]
                .iter()
                .any(|k| l.contains(k));
            if is_fs && lines.get(i + 1) != Some(&"---> Using cache") {
                work.push(l.to_string());
            }
        }
    }
    work
}

/// Issue 6 item 4: once a stack was built, the next run rebuilds nothing — both builders (compose's
/// BuildKit and the classic `docker build` of suite `images`) take every step from the cache,
/// although teardown removed the run's tagged images.
#[test]
fn a_second_run_takes_every_build_step_from_the_cache() {
    // A copy with tags and a host port of its own: it waits for no other test's run.
    let (_copy, fixtures) = common::features_copy(&["features"]);
    let suite = fixtures.join("features/suite.yaml");
    let suite = suite.to_str().unwrap();
    let first = stackcheck(&["run", "-v", suite]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let second = stackcheck(&["run", "-v", suite]);
    let out = text(&second);
    assert_eq!(second.status.code(), Some(0), "{out}");
    assert!(
        out.contains(" CACHED") && out.contains("Using cache"),
        "both builders ran: {out}"
    );
    let work = uncached_build_steps(&out);
    assert!(work.is_empty(), "rebuilt on a warm run: {work:#?}\n{out}");
}

/// The same when the base image carries a label of ours, as the offline stand-ins do
/// (`io.stackcheck.standin`, inherited by every step of a Dockerfile over them): teardown removed
/// the whole classic cache down to the base, so every run ran every step (pip installs included).
#[test]
fn the_classic_cache_over_a_base_labelled_by_us_survives_teardown() {
    let standin = "{{index .Config.Labels \"io.stackcheck.standin\"}}";
    let base = Command::new("docker")
        .args(["image", "inspect", "python:3.11-slim", "-f", standin])
        .output()
        .unwrap();
    assert!(!text(&base).trim().is_empty(), "no stand-in base");
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("sc-labelled-base:p{}", std::process::id());
    let suite = format!("suite: labelled-base\nstack:\n  compose: [compose.yaml]\nimages:\n  {tag}:\n    build: {{ context: . }}\n    files: {{ /built: present }}\n");
    for (name, body) in [
        (
            "Dockerfile",
            "FROM python:3.11-slim\nRUN echo built > /built\n",
        ),
        ("compose.yaml", "services: {}\n"),
        ("suite.yaml", &suite),
    ] {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    let suite = dir.path().join("suite.yaml");
    let first = stackcheck(&["run", "-v", suite.to_str().unwrap()]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let second = stackcheck(&["run", "-v", suite.to_str().unwrap()]);
    let out = text(&second);
    assert_eq!(second.status.code(), Some(0), "{out}");
    assert!(out.contains("Using cache"), "{out}");
    let work = uncached_build_steps(&out);
    assert!(work.is_empty(), "rebuilt on a warm run: {work:#?}\n{out}");
}

#[test]
fn uncached_steps_are_recognised_in_both_builders_output() {
    let out = "#6 [api 2/4] RUN make\n#6 DONE 1.2s\n#7 [api 3/4] COPY a /\n#7 CACHED\n\
               Step 2/4 : COPY m /m\n ---> Using cache\nStep 3/4 : RUN x\n ---> Running in 1\n\
               Step 4/4 : LABEL io.stackcheck.run=1\n ---> Running in 2\n";
    let work = uncached_build_steps(out);
    assert_eq!(work, ["#6 [api 2/4] RUN make", "Step 3/4 : RUN x"]);
}

/// The JSON report's schema is documented in the repository; it must be the one the binary
/// prints (a change to the report shows up as a diff of `docs/report.schema.json`).
#[test]
fn the_committed_report_schema_is_the_one_the_binary_prints() {
    let o = stackcheck(&["schema", "--report"]);
    assert_eq!(o.status.code(), Some(0));
    let printed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("docs/report.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        printed, committed,
        "docs/report.schema.json is stale: run `stackcheck schema --report > docs/report.schema.json`"
    );
}

/// Issue 7 items 2 and 4 on a real stack: a check that fails once and passes on its re-run is
/// flaky (console mark, JSON status with the failed attempt, JUnit `<flakyFailure>`, summary
/// section) and passes the gate; a quarantined failure is a warning; `--no-flaky` fails the run.
#[test]
fn flaky_checks_pass_marked_quarantined_failures_warn_and_no_flaky_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (json, junit, summary) = (
        dir.path().join("r.json"),
        dir.path().join("r.xml"),
        dir.path().join("r.md"),
    );
    let o = stackcheck(&[
        "run",
        "fixtures/flaky/suite.yaml",
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("FLAKY [") && out.contains("QUAR  ["), "{out}");
    assert!(out.contains("(1 flaky, 1 quarantined), 0 failed"), "{out}");

    let report = valid_report(&json);
    assert_eq!(report["schema"], "stackcheck-report/1");
    assert_eq!(report["status"], "passed");
    let flaky = test_status(&report, "flaky::checks::fails once then passes");
    assert_eq!(flaky["status"], "flaky", "{flaky}");
    assert!(
        flaky["failed_attempts"][0]
            .as_str()
            .unwrap()
            .starts_with("attempt 1: exit code 1, expected 0; stdout: first attempt fails"),
        "{flaky}"
    );
    let quarantined = test_status(&report, "flaky::checks::a known failure");
    assert_eq!(quarantined["status"], "quarantined", "{quarantined}");
    assert_eq!(report["suites"][0]["images"][0]["service"], "cache");
    assert!(report["suites"][0]["images"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<flakyFailure message=\"attempt 1: exit code 1"),
        "{xml}"
    );
    assert!(xml.contains("failures=\"0\""), "{xml}");
    assert!(
        xml.contains("QUARANTINED (failure reported as a warning)"),
        "{xml}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.starts_with("## stackcheck: ✅ passed"), "{md}");
    assert!(
        md.contains("| `flaky` | ✅ | 3 | 0 | 0 | 0 | 1 | 1 |"),
        "{md}"
    );
    assert!(
        md.contains("### Flaky") && md.contains("### Quarantined"),
        "{md}"
    );

    let o = stackcheck(&[
        "run",
        "fixtures/flaky/suite.yaml",
        "--no-flaky",
        "--json",
        json.to_str().unwrap(),
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let report = valid_report(&json);
    let flaky = test_status(&report, "flaky::checks::fails once then passes");
    assert_eq!(flaky["status"], "failed", "{flaky}");
    assert!(
        flaky["message"]
            .as_str()
            .unwrap()
            .starts_with("flaky (--no-flaky): passed on attempt 2 after attempt 1: exit code 1"),
        "{flaky}"
    );
}

/// Issue 7 item 5: `--filter` runs the matching tests only and starts only what they need —
/// the named service and what it depends on (seen in the JSON report's per-service images,
/// read from the containers that ran); a filter of static tests starts nothing.
#[test]
fn filter_runs_matching_tests_and_starts_only_what_they_need() {
    let dir = tempfile::tempdir().unwrap();
    let (_copy, fixtures) = common::features_copy(&["features"]);
    let suite = fixtures.join("features/suite.yaml");
    let suite = suite.to_str().unwrap();
    let json = dir.path().join("r.json");
    let o = stackcheck(&[
        "run",
        suite,
        "--filter",
        "service::api::*",
        "--json",
        json.to_str().unwrap(),
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let report = valid_report(&json);
    let names: Vec<&str> = report["suites"][0]["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "service::api::state",
            "service::api::networks",
            "service::api::read_only_mounts",
            "service::api::writable_mounts",
            "teardown::no-leaks"
        ],
        "{out}"
    );
    let ran: Vec<&str> = report["suites"][0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["service"].as_str().unwrap())
        .collect();
    assert_eq!(
        ran,
        ["api", "cache"],
        "api depends on cache; nothing else starts"
    );
    let images = &report["suites"][0]["images"];
    assert_eq!(
        images[0]["built"], true,
        "api is built by the stack: {images}"
    );
    assert_eq!(
        images[1]["built"], false,
        "cache runs an existing image: {images}"
    );

    let o = stackcheck(&[
        "run",
        suite,
        "--filter",
        "policy::*",
        "--json",
        json.to_str().unwrap(),
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        !out.contains("starting") && !out.contains("building"),
        "static tests start nothing: {out}"
    );
    let report = valid_report(&json);
    assert_eq!(
        report["suites"][0]["counts"]["tests"], 6,
        "5 rules + no-leaks: {out}"
    );
    assert_eq!(report["suites"][0]["images"], serde_json::json!([]));

    let o = stackcheck(&["run", suite, "--filter", "service::nope::*"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--filter service::nope::*: no test matches"),
        "{}",
        text(&o)
    );
}
