//! `stackcheck init --observe` on `fixtures/observe` (a one-shot that exits 0, a database without
//! a healthcheck on an internal network with a volume, a web app whose answers vary, a worker that
//! serves no port, a docs server that shares no network with the database): the suite
//! it writes holds only what was seen the same twice, each promise saying what was seen; it
//! passes on the stack it came from (proven before that stack is taken down, and again in a run
//! of its own), and on the twins in `fixtures/broken/observe` it fails exactly what is broken:
//! six breakages at once, a database whose data does not survive `down_up`, and a server on a
//! network it must not share with the database.
//! Drives the real engine and the real binary.

mod common;

use common::{failed_in, labelled, root, stackcheck, text};

#[test]
fn an_observed_suite_holds_what_held_twice_and_catches_each_breakage() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("observed.yaml");
    let o = stackcheck(&[
        "init",
        "fixtures/observe/docker-compose.yml",
        "--observe",
        "--output",
        suite.to_str().unwrap(),
        "--name",
        "observed",
    ]);
    let said = text(&o);
    assert_eq!(o.status.code(), Some(0), "{said}");
    assert!(
        said.contains("the written suite passes on the stack it was written from"),
        "{said}"
    );
    let written = std::fs::read_to_string(&suite).unwrap();
    for promise in [
        "  migrate:\n    state: \"exited:0\"",
        "  db:\n    state: running",
        "  web:\n    state: running",
        "  - name: \"web answers GET / on 8000\"\n    http: { service: web, port: 8000, path: \"/\" }\n    expect: { status: 200, headers: { content-type: \"/^text/html/\" }, body: \"<title>Observe demo</title>\" }",
        "  - name: \"web answers GET /health on 8000\"",
        "json: {\"status\":\"ok\"}",
        "  # seen twice: `pg_isready -h 127.0.0.1` exited 0\n  - name: \"db says it is ready\"",
        "  # seen twice: a connection to db:5432 accepted\n  - name: \"db accepts TCP on 5432\"",
        "back: { internal: true }",
        "    # seen in its container: mounted read-only\n    read_only_mounts: [\"/app\"]",
        "    # seen in its container: the variables compose gives it\n    env: { APP_MODE: demo }",
        "secrets not written: POSTGRES_PASSWORD",
        "  # PostgreSQL keeps its data in /var/lib/postgresql/data on the named volume `db_data`",
        "  - name: \"db keeps its data across down_up\"\n    steps:\n      - exec: { service: db, cmd: [psql,",
        "      - down_up: true\n",
        "  # `web` depends on `db`; seen twice: a connection from `web` to db:5432 succeeded\n  - name: \"web reaches db:5432\"\n    reach: { from: web, to: \"db:5432\" }",
        "  - name: \"docs cannot reach db:5432\"\n    reach: { from: docs, to: \"db:5432\", expect: unreachable }",
        "  # said in its log while watched: \"worker ready, polling for jobs\"\n  - name: \"worker says it is working\"\n    logs: { service: worker, contains: \"worker ready, polling for jobs\", within: 30s }",
    ] {
        assert!(written.contains(promise), "{promise} missing:\n{written}");
    }
    // The database's password is named, never written.
    assert!(!written.contains("observe-db-pw"), "{written}");
    // What varied between the two looks (the time in the page and the health) is not promised.
    assert!(!written.contains("\"time\""), "{written}");
    assert!(
        written.contains("# observed: exited with code 0 and stayed so"),
        "{written}"
    );
    assert!(
        labelled("io.stackcheck.suite=observed").is_empty(),
        "{said}"
    );

    let o = stackcheck(&["run", suite.to_str().unwrap(), "--ports", "ephemeral"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // The twin: the same suite over the stack broken six ways.
    assert_eq!(
        twin(dir.path(), &written, "docker-compose.override.yml"),
        [
            // The database started, then crashed: its checks say so, with that cause.
            "observed::checks::db accepts TCP on 5432",
            "observed::checks::db cannot reach docs:8080",
            "observed::checks::db keeps its data across down_up",
            "observed::checks::db says it is ready",
            "observed::checks::docs cannot reach db:5432",
            "observed::checks::web answers GET /health on 8000",
            "observed::checks::web reaches db:5432",
            "observed::checks::worker reaches db:5432",
            // The worker is up, doing nothing: it never says it is working.
            "observed::checks::worker says it is working",
            "observed::service::db::state",
            "observed::service::migrate::state",
            "observed::service::web::env",
            "observed::service::web::read_only_mounts",
        ]
    );
    // A database that stays up and answers but keeps its data on the container's own volume:
    // only the persistence scenario fails.
    assert_eq!(
        twin(dir.path(), &written, "lost-data.override.yml"),
        ["observed::checks::db keeps its data across down_up"]
    );
    // The docs server joined to the database's network: the isolation checks both ways fail, and
    // its networks.
    assert_eq!(
        twin(dir.path(), &written, "network-joined.override.yml"),
        [
            "observed::checks::db cannot reach docs:8080",
            "observed::checks::docs cannot reach db:5432",
            "observed::checks::worker cannot reach docs:8080",
            "observed::service::docs::networks",
        ]
    );
}

/// The failed tests of the written suite run over the stack with `fixtures/broken/observe/FILE`
/// added, sorted.
fn twin(dir: &std::path::Path, written: &str, file: &str) -> Vec<String> {
    let override_file = root().join("fixtures/broken/observe").join(file);
    let twin = dir.join(format!("twin-{file}.yaml"));
    std::fs::write(&twin, common::with_override(written, &override_file)).unwrap();
    let json = dir.join(format!("twin-{file}.json"));
    let o = stackcheck(&[
        "run",
        twin.to_str().unwrap(),
        "--ports",
        "ephemeral",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let mut failed: Vec<String> = failed_in(&report).into_iter().map(String::from).collect();
    failed.sort();
    // The console, for a reader of a failed comparison.
    eprintln!("{file}:\n{}", text(&o));
    failed
}

/// `init --observe --reuse` watches the stack `stackcheck up` left up from the same compose files
/// (whatever suite brought it up), proves what it writes on that stack and leaves it up; with no
/// such stack it says how to bring one up and starts nothing.
#[test]
fn reuse_watches_the_stack_up_left_and_leaves_it_up() {
    let dir = tempfile::tempdir().unwrap();
    let compose = root().join("fixtures/observe/docker-compose.yml");
    let compose = compose.to_str().unwrap();
    let lost = root().join("fixtures/broken/observe/lost-data.override.yml");
    let none = dir.path().join("none.yaml");
    let o = stackcheck(&[
        "init",
        compose,
        lost.to_str().unwrap(),
        "--observe",
        "--reuse",
        "--name",
        "observe-none",
        "-o",
        none.to_str().unwrap(),
    ]);
    let said = text(&o);
    assert_eq!(o.status.code(), Some(3), "{said}");
    assert!(said.contains("no kept stack of compose files"), "{said}");
    assert!(
        said.contains("bring one up with `stackcheck up SUITE`"),
        "{said}"
    );
    assert!(!none.exists());
    assert!(labelled("io.stackcheck.suite=observe-none").is_empty());

    let up = dir.path().join("up.yaml");
    std::fs::write(
        &up,
        format!("suite: observe-kept\nstack:\n  compose: [{compose:?}]\nservices: {{}}\n"),
    )
    .unwrap();
    let o = stackcheck(&["up", up.to_str().unwrap(), "--ports", "ephemeral"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let kept = labelled("io.stackcheck.suite=observe-kept");
    let suite = dir.path().join("observed.yaml");
    let o = stackcheck(&[
        "init",
        compose,
        "--observe",
        "--reuse",
        "-o",
        suite.to_str().unwrap(),
    ]);
    let said = text(&o);
    let after = labelled("io.stackcheck.suite=observe-kept");
    let down = stackcheck(&["down", up.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{said}");
    assert!(
        said.contains("the written suite passes on the stack it was written from"),
        "{said}"
    );
    assert!(!said.contains("starting the stack"), "{said}");
    let written = std::fs::read_to_string(&suite).unwrap();
    assert!(
        written.contains("  - name: \"web reaches db:5432\""),
        "{written}"
    );
    // The stack is left as it was found: the same networks and volumes, every container there
    // (a `down_up` made some of them again).
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(after.networks), sorted(kept.networks), "{said}");
    assert_eq!(sorted(after.volumes), sorted(kept.volumes), "{said}");
    assert_eq!(after.containers.len(), kept.containers.len(), "{said}");
    assert_eq!(down.status.code(), Some(0), "{}", text(&down));
    assert!(labelled("io.stackcheck.suite=observe-kept").is_empty());
}
