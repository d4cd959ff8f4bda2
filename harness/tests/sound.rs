//! Sound verdicts on compose shapes written elsewhere (issue 14): each promise is proven both
//! ways, on a stack that keeps it and on a twin broken in exactly that respect. Drives the real
//! engine.

mod common;

use common::{assert_failed_exactly, assert_message, fixture, labelled, run_file};

/// Item 1: `worker` runs the image `api` builds. Compose builds it once and starts both; the
/// image is not "missing".
#[test]
fn a_service_running_the_image_another_builds_starts_from_that_build() {
    let r = run_file(&fixture("shared-image/suite.yaml"));
    assert_eq!(r.infra_error, None);
    assert_failed_exactly(&r, &[]);
    let worker = r.images.iter().find(|i| i.service == "worker").unwrap();
    let api = r.images.iter().find(|i| i.service == "api").unwrap();
    assert_eq!(worker.id, api.id, "both run the one image compose built");
}

/// Item 1, broken twin: an image nothing in the stack builds and the engine lacks stops the run
/// before anything starts (exit 3 material), naming the image, who runs it, that nothing builds
/// it and how to get it — advice for the user's own project, not this repository's scripts.
#[test]
fn an_image_nothing_builds_stops_the_run_naming_it_and_how_to_get_it() {
    let r = run_file(&fixture("broken/shared-image-missing/suite.yaml"));
    let why = r.infra_error.as_deref().expect("an infrastructure error");
    for part in [
        "`stackcheck-shared-app:nobody-builds-this` (run by service `worker`; nothing in the stack builds it; pull policy `never`)",
        "`docker compose pull worker`",
    ] {
        assert!(why.contains(part), "{why}");
    }
    assert!(!why.contains("ci/images.sh"), "{why}");
    assert!(
        r.images.is_empty(),
        "no service was started: {:?}",
        r.images
    );
    let left = labelled(&format!("io.stackcheck.run={}", r.run_id));
    assert!(left.is_empty(), "{left:?}");
}

/// Item 2: a published port with a listener behind it passes `ports` and `tcp`.
#[test]
fn a_published_port_with_a_listener_passes() {
    let r = run_file(&fixture("listeners/suite.yaml"));
    assert_failed_exactly(&r, &[]);
}

/// Item 2, broken twin: the process runs, the port is published, nothing listens. The engine's
/// userland proxy still accepts on the host port and closes at once; both promises fail, saying
/// so.
#[test]
fn a_published_port_with_nothing_listening_fails_ports_and_tcp() {
    let r = run_file(&fixture("broken/no-listener/suite.yaml"));
    let ports = "broken-no-listener::service::api::ports";
    let tcp = "broken-no-listener::checks::api accepts TCP on 8000";
    let http = "broken-no-listener::checks::api answers HTTP on 8000";
    assert_failed_exactly(&r, &[ports, tcp, http]);
    // One cause, one wording, whatever the check kind.
    for name in [ports, tcp, http] {
        assert_message(
            &r,
            name,
            "nothing listens on container port 8000 (the host port is published; the engine's proxy accepted and closed the connection",
        );
    }
}

/// Item 3: services that stay up pass `running` (after the settle window) and still pass when
/// the checks end.
#[test]
fn services_that_stay_up_keep_their_state_for_the_run() {
    let r = run_file(&fixture("holds/suite.yaml"));
    assert_failed_exactly(&r, &[]);
}

/// Item 3, broken twin: `worker` exits 20 s after start, after it passed `running`, while a slow
/// check runs; `api` crashes 2 s after every start under `restart: unless-stopped`. Both state
/// tests fail (the worker's when the checks end, with the exit code and when; the API's as a crash
/// loop, never passed in the moment before its first crash), and a check of the dead worker names
/// that as its cause.
#[test]
fn a_state_that_does_not_hold_fails_with_when_and_why() {
    let r = run_file(&fixture("broken/does-not-hold/suite.yaml"));
    let worker = "broken-does-not-hold::service::worker::state";
    let api = "broken-does-not-hold::service::api::state";
    let answers = "broken-does-not-hold::checks::the worker answers";
    let tcp = "broken-does-not-hold::checks::api accepts TCP on 8000";
    assert_failed_exactly(&r, &[worker, api, answers, tcp]);
    assert_message(
        &r,
        worker,
        "`worker` did not stay running: it is exited:3 now; last exit code 3 at ",
    );
    assert_message(&r, worker, "restarted 0× since it was running");
    let o = common::outcome(&r, worker);
    assert!(o.detail.contains("worker gives up"), "{}", o.detail);
    assert_message(&r, api, "`api` is crash-looping: restarted");
    assert_message(&r, answers, "(cause: `worker` exited with code 3)");
}

/// Item 3, with no checks to wait for: a suite of states alone still watches each pass for a
/// while. `worker` exits 6 s after its start, just after it passed `running`; without the hold
/// window the run looked again a moment after the pass and ended green (a false pass seen under
/// load in `stackcheck mutate`). The twin that stays up passes.
#[test]
fn a_state_that_ends_right_after_its_pass_fails_without_any_check() {
    let ok = run_file(&fixture("holds/states-only.yaml"));
    assert_failed_exactly(&ok, &[]);
    let r = run_file(&fixture("broken/ends-after-pass/suite.yaml"));
    let worker = "broken-ends-after-pass::service::worker::state";
    assert_failed_exactly(&r, &[worker]);
    assert_message(
        &r,
        worker,
        "`worker` did not stay running: it is exited:3 now",
    );
}

/// A terminal cause ends the wait: a check polling a worker (`retry: 60s`) passes while it runs;
/// when it exits 0 with no restart policy to start it again, the check stops at once naming that
/// cause instead of polling out its budget (the message of a budget run out says "still failing
/// after").
#[test]
fn a_check_stops_waiting_on_a_worker_that_ended_for_good() {
    let ok = run_file(&fixture("holds/retry.yaml"));
    assert_failed_exactly(&ok, &[]);
    let r = run_file(&fixture("broken/worker-ends/suite.yaml"));
    let state = "broken-worker-ends::service::worker::state";
    let check = "broken-worker-ends::checks::the worker answers within its retry";
    assert_failed_exactly(&r, &[state, check]);
    assert_message(
        &r,
        check,
        "(stopped waiting: `worker` exited with code 0 and no restart policy starts it again)",
    );
    let o = common::outcome(&r, check);
    assert!(!o.message.contains("still failing after"), "{}", o.message);
}

fn skipped(r: &stackcheck::report::SuiteReport) -> Vec<&str> {
    r.outcomes
        .iter()
        .filter(|o| o.status == stackcheck::report::Status::Skipped)
        .map(|o| o.name.as_str())
        .collect()
}

/// Item 4: a dependency that never becomes healthy is the one failure. The API compose never
/// started, and the check of it, are not run, at once (the TCP check's 60 s retry budget is not
/// spent), saying which failure they wait on; the database did start, so its own check runs.
#[test]
fn a_dependency_that_never_becomes_healthy_is_the_one_failure() {
    let r = run_file(&fixture("broken/dependency-never-healthy/suite.yaml"));
    let db = "broken-dependency-never-healthy::service::db::state";
    assert_failed_exactly(&r, &[db]);
    assert_eq!(
        skipped(&r),
        [
            "broken-dependency-never-healthy::service::api::state",
            "broken-dependency-never-healthy::checks::api accepts TCP on 8000",
        ]
    );
    for o in r
        .outcomes
        .iter()
        .filter(|o| o.status == stackcheck::report::Status::Skipped)
    {
        assert_eq!(o.duration_ms, 0, "{}: {}", o.name, o.message);
        assert!(
            o.message.starts_with("not run: `db` is not up"),
            "{}",
            o.message
        );
        assert!(o.message.contains(db), "{}", o.message);
    }
}

/// Item 4: a failed `compose build` in a suite without `images:` is a FAIL line with the build
/// log (exit 1), and what needed it is skipped with the cause printed once on the console; JUnit
/// marks them `<skipped>` and JSON `skipped`.
#[test]
fn a_failed_build_is_one_visible_failure_and_the_rest_is_skipped() {
    let dir = std::env::temp_dir().join(format!("stackcheck-build-fails-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (junit, json) = (dir.join("r.xml"), dir.join("r.json"));
    let out = common::stackcheck(&[
        "run",
        "fixtures/broken/build-fails/suite.yaml",
        "--junit",
        junit.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let console = common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{console}");
    let fail: Vec<&str> = console.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fail.len(), 1, "{console}");
    assert!(
        fail[0].contains("broken-build-fails::service::app::state")
            && fail[0].contains("`app` cannot start: its image did not build"),
        "{console}"
    );
    assert!(
        console.contains("requirements.txt: no such file"),
        "the build log's tail: {console}"
    );
    let skips: Vec<&str> = console.lines().filter(|l| l.starts_with("SKIP")).collect();
    assert_eq!(skips.len(), 3, "{console}");
    assert_eq!(
        console.matches("not run: the build failed").count(),
        1,
        "the cause once: {console}"
    );
    assert!(console.contains("1 failed, 3 not run"), "{console}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<skipped").count(), 3, "{xml}");
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    let report = common::valid_report(&json);
    assert_eq!(report["counts"]["skipped"], 3);
    assert_eq!(report["counts"]["failed"], 1);
    assert_eq!(
        common::test_status(&report, "broken-build-fails::checks::cache answers")["status"],
        "skipped"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Item 8: stand-ins behave like upstream on upstream's documented minimal invocations:
/// Prometheus with only `--config.file` (upstream stores in `data/` under `/prometheus`; Debian's
/// build would write to `/var/lib/prometheus/metrics2` and exit), Postgres with only
/// `POSTGRES_PASSWORD`, Redis with `redis-server --appendonly yes`.
#[test]
fn stand_ins_work_on_upstreams_minimal_invocations() {
    let r = run_file(&fixture("upstream-defaults/suite.yaml"));
    assert_failed_exactly(&r, &[]);
}

/// Item 6: two processes run a stack with fixed subnets on one engine at once. Under
/// `ports: ephemeral` each moves `backend` (and `db`'s fixed address in it) to a free range it
/// claims; `legacy`, which `app` reaches by address, cannot move, so one run waits for the other's
/// claim, saying so. Both pass, the documented subnets still proven from the compose files.
#[test]
fn two_runs_of_a_stack_with_fixed_subnets_share_one_engine() {
    let dir = tempfile::tempdir().unwrap();
    let suite = fixture("fixed-subnet/suite.yaml");
    let runs: Vec<_> = ["a", "b"]
        .iter()
        .map(|n| {
            let json = dir.path().join(format!("{n}.json"));
            let child = std::process::Command::new(env!("CARGO_BIN_EXE_stackcheck"))
                .args([
                    "run",
                    suite.to_str().unwrap(),
                    "--json",
                    json.to_str().unwrap(),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (child, json)
        })
        .collect();
    let mut moved = Vec::new();
    let mut waited = 0;
    for (child, json) in runs {
        let out = child.wait_with_output().unwrap();
        let text = common::text(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        waited += text.contains("waiting for subnet 10.29.1.0/24: stackcheck run") as usize;
        let report = common::valid_report(&json);
        let backend = common::test_status(&report, "fixed-subnet::network::backend");
        let message = backend["message"].as_str().unwrap().to_string();
        assert!(
            message.contains("(documented 10.29.0.0/24 as "),
            "{message}"
        );
        moved.push(message);
        let legacy = common::test_status(&report, "fixed-subnet::network::legacy");
        assert!(
            legacy["message"]
                .as_str()
                .unwrap()
                .contains("[\"10.29.1.0/24\"]"),
            "{legacy}"
        );
        let run_id = report["suites"][0]["run"].as_str().unwrap();
        assert!(labelled(&format!("io.stackcheck.run={run_id}")).is_empty());
    }
    assert_eq!(waited, 1, "one run waits for the other's claim on `legacy`");
    assert_ne!(
        moved[0], moved[1],
        "each run moved `backend` to its own range"
    );
}

/// Item 6, broken twin: a network that is no stackcheck run's holds the documented subnet. Compose
/// could never create the stack's network; the run stops at once, before anything starts, naming
/// the subnet and the network, instead of waiting or failing inside `up`.
#[test]
fn a_subnet_held_by_a_network_outside_any_run_stops_the_run_naming_it() {
    let name = format!("sc-test-foreign-{}", std::process::id());
    let made = std::process::Command::new("docker")
        .args([
            "network",
            "create",
            "--subnet",
            "10.29.2.0/24",
            "--label",
            "io.stackcheck.test=foreign",
            &name,
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", common::text(&made));
    let r = run_file(&fixture("broken/subnet-taken/suite.yaml"));
    let _ = std::process::Command::new("docker")
        .args(["network", "rm", &name])
        .output();
    let why = r.infra_error.as_deref().expect("an infrastructure error");
    assert!(
        why.contains(&format!("subnet 10.29.2.0/24 overlaps 10.29.2.0/24 of network `{name}`, which is not a stackcheck run's")),
        "{why}"
    );
    assert!(r.images.is_empty(), "nothing was started: {:?}", r.images);
    assert!(labelled(&format!("io.stackcheck.run={}", r.run_id)).is_empty());
}

/// Item 6, the engine's side: a network made in the instant between the run releasing the
/// subnets it held and compose creating the stack's own (the engine's default pools rotate
/// through 172.17–31/16, so on a busy engine any project's network can land there) makes `up`
/// fail with "Pool overlaps". Here another "run" makes one over `legacy`'s subnet the moment the
/// run's hold on it goes; the run waits for that network, starts again, and is green.
#[test]
fn a_network_taking_a_subnet_as_the_stack_starts_is_waited_for() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let intruder = format!("sc-test-intruder-{}", std::process::id());
    let docker = |args: &[&str]| Command::new("docker").args(args).output().unwrap();
    let mut events = Command::new("docker")
        .args([
            "events",
            "--filter",
            "type=network",
            "--filter",
            "event=destroy",
        ])
        .args(["--format", "{{.Actor.Attributes.name}}"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(events.stdout.take().unwrap()).lines();
    let name = intruder.clone();
    // A live run's network (this process owns it): no other test's stale sweep takes it.
    let owner = format!("io.stackcheck.owner={}", stackcheck::engine::owner());
    let pid = format!("io.stackcheck.owner-pid={}", std::process::id());
    let made = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line == "stackcheck-hold-10.29.1.0_24" {
                let out = Command::new("docker")
                    .args(["network", "create", "--subnet", "10.29.1.0/24", "--label"])
                    .args([
                        "io.stackcheck.run=intruder",
                        "--label",
                        &owner,
                        "--label",
                        &pid,
                        &name,
                    ])
                    .output()
                    .unwrap();
                return common::text(&out);
            }
        }
        "the hold on 10.29.1.0/24 was never released".to_string()
    });
    let mut run = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(["run", fixture("fixed-subnet/suite.yaml").to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(run.stderr.take().unwrap());
    let mut said = Vec::new();
    for line in stderr.lines().map_while(Result::ok) {
        // The run has met the intruder and waits for it: it goes, as a run ending would. (Removed
        // at the first sign of the clash instead, it could be gone before the run looks.)
        if line.contains("waiting for subnet 10.29.1.0/24: network `sc-test-intruder-") {
            docker(&["network", "rm", &intruder]);
        }
        said.push(line);
    }
    let status = run.wait().unwrap();
    let _ = events.kill();
    let _ = events.wait();
    let created = made.join().unwrap();
    docker(&["network", "rm", &intruder]);
    let said = said.join("\n");
    assert!(
        created.trim().len() == 64,
        "the intruder was not made: {created}\n{said}"
    );
    assert!(
        said.contains("waiting for subnet 10.29.1.0/24: network `sc-test-intruder-"),
        "{said}"
    );
    assert_eq!(status.code(), Some(0), "{said}");
}

/// Item 6, why a run holds its subnets until `up`: the engine hands its default pools out in
/// rotation, and a held range is skipped. A network made after one that took 172.A.0.0/16 would
/// take the next range; with a /24 of that range held, it takes another.
#[test]
fn a_held_subnet_is_skipped_by_the_engines_default_pools() {
    let run = format!("hold{}", std::process::id());
    // Owned by this live process, or another test's stale sweep would take the hold mid-test.
    let labels = std::collections::BTreeMap::from([
        (stackcheck::engine::LABEL_RUN.to_string(), run.clone()),
        (
            stackcheck::engine::LABEL_OWNER.to_string(),
            stackcheck::engine::owner(),
        ),
        (
            stackcheck::engine::LABEL_OWNER_PID.to_string(),
            std::process::id().to_string(),
        ),
    ]);
    let subnet_of = |name: &str| -> ipnet::Ipv4Net {
        let out = std::process::Command::new("docker")
            .args([
                "network",
                "inspect",
                name,
                "-f",
                "{{(index .IPAM.Config 0).Subnet}}",
            ])
            .output()
            .unwrap();
        common::text(&out).trim().parse().unwrap()
    };
    let make = |name: &str| {
        let out = std::process::Command::new("docker")
            .args([
                "network",
                "create",
                "--label",
                "io.stackcheck.test=pools",
                name,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::text(&out));
        let net = subnet_of(name);
        std::process::Command::new("docker")
            .args(["network", "rm", name])
            .output()
            .unwrap();
        net
    };
    let pid = std::process::id();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let engine = rt.block_on(stackcheck::engine::Engine::connect()).unwrap();
    // The range after a fresh network is the pool's next; a network another test creates at the
    // same moment may take it first (then the hold is rightly refused): try again, after a pause
    // of random length, so that a burst of other runs' networks (a mutation run) has passed.
    let (first, held) = (0..20)
        .find_map(|attempt| {
            if attempt > 0 {
                std::thread::sleep(common::jitter(2_000));
            }
            let first = make(&format!("sc-test-pool-a-{pid}-{attempt}"));
            let after = u32::from(first.broadcast()) + 1;
            let next = ipnet::Ipv4Net::new(after.into(), first.prefix_len()).unwrap();
            let held = ipnet::Ipv4Net::new(next.network(), 24).unwrap();
            rt.block_on(engine.reserve_subnet(&held, &labels))
                .unwrap()
                .then_some((first, held))
        })
        .expect("the pool's next range was taken by another network 20 times in a row");
    let second = make(&format!("sc-test-pool-b-{pid}"));
    // A second hold over the same range is refused: the hold is also a claim on the range.
    let again = rt.block_on(engine.reserve_subnet(&held, &labels)).unwrap();
    rt.block_on(engine.release_subnets(&run)).unwrap();
    assert!(!again, "a second hold of {held} was granted");
    assert!(
        !second.contains(&held.network()) && !held.contains(&second.network()),
        "{second} was handed out over the held {held} (the one before was {first})"
    );
    assert!(labelled(&format!("io.stackcheck.run={run}")).is_empty());
}

/// Why a crossing made while networks change is probed again (`checks/net.rs`): every network
/// created or removed reprograms Docker's firewall, and for that moment an internal network
/// leaks. The watch must see such changes, made by any client, while a probe runs.
#[test]
fn network_changes_by_any_client_are_seen_while_a_probe_runs() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let engine = rt.block_on(stackcheck::engine::Engine::connect()).unwrap();
    let name = format!("sc-test-churn-{}", std::process::id());
    let seen = rt.block_on(async {
        let watch = engine.watch_network_changes();
        for args in [
            vec![
                "network",
                "create",
                "--label",
                "io.stackcheck.test=churn",
                &name,
            ],
            vec!["network", "rm", &name],
        ] {
            let out = tokio::process::Command::new("docker")
                .args(&args)
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{}", common::text(&out));
        }
        watch.finish().await
    });
    for change in [format!("create {name}"), format!("destroy {name}")] {
        assert!(seen.contains(&change), "{change} not in {seen:?}");
    }
}
