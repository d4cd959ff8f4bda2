//! Release-gate evidence (`run --attest`, `stackcheck verify`) proven both ways on a real run:
//! a signed attestation of a passing run verifies, and a tampered payload, another key, an image
//! the run did not run, an edited suite, an unsigned envelope and a failed run's evidence are
//! each refused with their reason (exit 1); a malformed file is exit 2. The signature is also
//! checked with Python's `cryptography`, and no secret of the suite's env files is in the payload.
//! Keys are made by `openssl`, as users make them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use common::{fixture, root, stackcheck, text};

/// An Ed25519 key pair written by `openssl` into `dir`: (private PEM, public PEM).
fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (key, public) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.pub.pem")),
    );
    let made = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success(), "openssl genpkey");
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap();
    assert!(out.success(), "openssl pkey -pubout");
    (key, public)
}

/// A copy of `fixtures/<name>` in `dir` (its suite is edited by a test).
fn copy(name: &str, dir: &Path) -> PathBuf {
    let to = dir.join(name.replace('/', "-"));
    let cp = Command::new("cp")
        .arg("-r")
        .arg(fixture(name))
        .arg(&to)
        .status()
        .unwrap();
    assert!(cp.success());
    to
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `stackcheck verify` with `args`: its exit code and what it said.
fn verify(args: &[&str]) -> (Option<i32>, String) {
    let o = stackcheck(&[&["verify"], args].concat());
    (o.status.code(), text(&o))
}

/// The envelope at `path` and its decoded statement.
fn read(path: &Path) -> (serde_json::Value, serde_json::Value) {
    let envelope: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let payload = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    (envelope, serde_json::from_slice(&payload).unwrap())
}

#[test]
fn a_signed_attestation_verifies_and_each_tampering_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "release");
    let (_, other) = keypair(dir.path(), "other");
    let stack = copy("masking", dir.path());
    let suite = stack.join("suite.yaml");
    let att = dir.path().join("run.intoto.json");
    let o = stackcheck(&["run", s(&suite), "--attest", s(&att), "--sign-key", s(&key)]);
    let said = text(&o);
    assert_eq!(o.status.code(), Some(0), "{said}");
    assert!(
        said.contains("attestation written to") && said.contains("result WARNED, signed by key"),
        "{said}"
    );
    // The key is never printed.
    let pem = std::fs::read_to_string(&key).unwrap();
    let secret_line = pem.lines().nth(1).unwrap();
    assert!(!said.contains(secret_line), "{said}");

    let (envelope, statement) = read(&att);
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(
        statement["predicateType"],
        "https://in-toto.io/attestation/test-result/v0.1"
    );
    let p = &statement["predicate"];
    // A `warn` policy finding (the password equal to the image's name) makes the run WARNED.
    assert_eq!(p["result"], "WARNED", "{p}");
    assert!(p["failedTests"].as_array().unwrap().is_empty(), "{p}");
    let config: Vec<&str> = p["configuration"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for file in [
        "suite.yaml",
        "docker-compose.yml",
        ".env.dev",
        ".env.dev.db",
    ] {
        assert!(
            config.iter().any(|c| c.ends_with(&format!("/{file}"))),
            "{file} not in {config:?}"
        );
    }
    let subjects = statement["subject"].as_array().unwrap();
    assert!(
        subjects.iter().any(|s| s["name"] == "postgres:15-alpine"),
        "{subjects:?}"
    );
    // No secret of the env files is in the evidence (the test names carry it masked).
    let whole = format!("{envelope}{statement}");
    assert!(!whole.contains("hello_django"), "{statement}");
    assert!(
        p["passedTests"].to_string().contains("db serves ****_dev"),
        "{p}"
    );

    // Verified: the key, the images by name and by ID, the suite's files as they are.
    let id = subjects
        .iter()
        .find(|s| s["name"] == "postgres:15-alpine")
        .unwrap()["digest"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let by_id = format!("postgres@sha256:{id}");
    let good = [
        "--key",
        s(&public),
        "--image",
        "postgres:15-alpine",
        "--image",
        &by_id,
        "--suite",
        s(&suite),
    ];
    let (code, out) = verify(&[&[s(&att)], &good[..]].concat());
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("verified:"), "{out}");
    // …and by implementations other than ours: Python's `cryptography`, and OpenSSL as the docs
    // show it (`ci/verify-attestation.sh`), which refuses another key.
    python_verifies(&att, &public);
    let openssl = |key: &Path| {
        let o = Command::new("bash")
            .arg(root().join("ci/verify-attestation.sh"))
            .arg(&att)
            .arg(key)
            .output()
            .unwrap();
        (o.status.success(), text(&o))
    };
    let (ok, out) = openssl(&public);
    assert!(
        ok && out.contains("Signature Verified Successfully") && out.contains("result: WARNED"),
        "{out}"
    );
    let (ok, out) = openssl(&other);
    assert!(!ok, "{out}");

    // --strict asks for PASSED: a pass with a warning is refused, saying which test warned.
    let (code, out) = verify(&[s(&att), "--key", s(&public), "--strict"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("passed with warnings (--strict asks for PASSED): masking::policy::no_default_credentials"), "{out}");

    // Another key.
    let (code, out) = verify(&[s(&att), "--key", s(&other)]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no signature verifies with the key"), "{out}");

    // An image the run did not run (present on the engine, and by a digest).
    let (code, out) = verify(&[
        s(&att),
        "--key",
        s(&public),
        "--image",
        "python:3.9-slim",
        "--image",
        &format!("x@sha256:{}", "0".repeat(64)),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("image `python:3.9-slim` (sha256:"), "{out}");
    assert!(
        out.contains(&format!(
            "image `x@sha256:{}` (sha256:{}) is not among the images the run ran",
            "0".repeat(64),
            "0".repeat(64)
        )),
        "{out}"
    );

    // A tampered payload: a failure turned into a pass, the signature kept.
    let tampered = dir.path().join("tampered.json");
    let mut forged = statement.clone();
    forged["predicate"]["result"] = "PASSED".into();
    let mut env2 = envelope.clone();
    env2["payload"] = base64::engine::general_purpose::STANDARD
        .encode(forged.to_string())
        .into();
    std::fs::write(&tampered, env2.to_string()).unwrap();
    let (code, out) = verify(&[s(&tampered), "--key", s(&public)]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no signature verifies"), "{out}");

    // Unsigned evidence.
    let unsigned = dir.path().join("unsigned.json");
    let mut env3 = envelope.clone();
    env3["signatures"] = serde_json::json!([]);
    std::fs::write(&unsigned, env3.to_string()).unwrap();
    let (code, out) = verify(&[s(&unsigned), "--key", s(&public)]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("the envelope carries no signature"), "{out}");

    // An edited suite: the file on disk is not the one the run was made from.
    let text_of = std::fs::read_to_string(&suite).unwrap();
    std::fs::write(&suite, text_of.replace("within: 20s", "within: 21s")).unwrap();
    let (code, out) = verify(&[s(&att), "--key", s(&public), "--suite", s(&suite)]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("suite.yaml` is not what the run was made from: sha256"),
        "{out}"
    );

    // Not an attestation at all, or a key that is not one: exit 2.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"payload\": 1}").unwrap();
    let (code, out) = verify(&[s(&junk), "--key", s(&public)]);
    assert_eq!(code, Some(2), "{out}");
    let (code, out) = verify(&[s(&att), "--key", s(&key)]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("expected an Ed25519 public key"), "{out}");
    assert!(!out.contains(secret_line), "{out}");
}

#[test]
fn a_failed_runs_evidence_is_written_says_failed_and_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "release");
    let att = dir.path().join("failed.intoto.json");
    let suite = fixture("broken/masking/suite.yaml");
    let o = stackcheck(&["run", s(&suite), "--attest", s(&att), "--sign-key", s(&key)]);
    let said = text(&o);
    assert_eq!(o.status.code(), Some(1), "{said}");
    assert!(said.contains("result FAILED, signed by key"), "{said}");
    let (_, statement) = read(&att);
    assert_eq!(statement["predicate"]["result"], "FAILED", "{statement}");
    let failed = statement["predicate"]["failedTests"].as_array().unwrap();
    assert!(!failed.is_empty(), "{statement}");
    // Its failures quote values holding the password: masked here as in every report.
    assert!(
        !statement.to_string().contains("hello_django"),
        "{statement}"
    );
    let (code, out) = verify(&[s(&att), "--key", s(&public)]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the run did not pass: result FAILED, failed: broken-masking::"),
        "{out}"
    );
}

#[test]
fn bad_attest_flags_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let suite = fixture("masking/suite.yaml");
    let not_a_key = dir.path().join("k.pem");
    std::fs::write(&not_a_key, "hello").unwrap();
    let att = dir.path().join("a.json");
    let o = stackcheck(&[
        "run",
        s(&suite),
        "--attest",
        s(&att),
        "--sign-key",
        s(&not_a_key),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("expected an Ed25519 private key"),
        "{}",
        text(&o)
    );
    let o = stackcheck(&["run", s(&suite), "--attest", "/no/such/dir/a.json"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!att.exists());
}

/// Python's `cryptography` (from PyPI, in a virtualenv under `target/`) verifies the envelope's
/// signature over DSSE's pre-authentication encoding with the public key file.
fn python_verifies(att: &Path, public: &Path) {
    let venv = root().join("target/attest-venv");
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(made.success(), "python3 -m venv");
        let pip = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "cryptography"])
            .output()
            .unwrap();
        assert!(
            pip.status.success(),
            "pip install cryptography: {}",
            text(&pip)
        );
    }
    let script = r#"
import base64, json, sys
from cryptography.hazmat.primitives.serialization import load_pem_public_key
env = json.load(open(sys.argv[1]))
key = load_pem_public_key(open(sys.argv[2], "rb").read())
body = base64.b64decode(env["payload"])
kind = env["payloadType"].encode()
pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)
key.verify(base64.b64decode(env["signatures"][0]["sig"]), pae)
print("cryptography verified")
"#;
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(att)
        .arg(public)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("cryptography verified"));
}

/// The nextest target writes the same evidence for its run (`STACKCHECK_ATTEST`, the key in
/// `STACKCHECK_SIGN_KEY`), and so does the `Stack` API: both verify.
#[test]
fn the_nextest_target_and_the_stack_api_write_evidence_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = keypair(dir.path(), "release");
    let pem = std::fs::read_to_string(&key).unwrap();
    let att = dir.path().join("nextest.intoto.json");
    let out = Command::new(common::conformance_binary())
        .current_dir(root().join("harness"))
        .env("STACKCHECK_SUITES", fixture("masking"))
        .env("STACKCHECK_TRIALS", "suite")
        .env("NEXTEST_RUN_ID", format!("attest-{}", std::process::id()))
        .env("STACKCHECK_ATTEST", &att)
        .env("STACKCHECK_SIGN_KEY", &pem)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (code, said) = verify(&[
        s(&att),
        "--key",
        s(&public),
        "--image",
        "postgres:15-alpine",
    ]);
    assert_eq!(code, Some(0), "{said}");
    let (_, statement) = read(&att);
    assert!(
        statement["predicate"]["warnedTests"]
            .to_string()
            .contains("masking::policy::no_default_credentials"),
        "{statement}"
    );

    let stack_att = dir.path().join("stack.intoto.json");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let written = rt.block_on(async {
        let stack = stackcheck::Stack::builder(fixture("masking/suite.yaml"))
            .ports(stackcheck::suite::PortsMode::Ephemeral)
            .up()
            .await
            .unwrap();
        let report = stack.check().await;
        let to = stackcheck::attest::AttestTo::from_flags(Some(stack_att.clone()), Some(&key))
            .unwrap()
            .unwrap();
        let written = stack.attest(&report, &to);
        stack.down().await.unwrap();
        written
    });
    assert!(written.unwrap().contains("signed by key"));
    let (code, said) = verify(&[
        s(&stack_att),
        "--key",
        s(&public),
        "--suite",
        s(&fixture("masking/suite.yaml")),
    ]);
    assert_eq!(code, Some(0), "{said}");
}

/// An image the suite builds under `images:` and no service runs is a subject too, by its ID.
#[test]
fn an_image_built_but_not_run_is_a_subject() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM python:3.11-slim\nLABEL tool=ci\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "services:\n  app:\n    image: python:3.11-slim\n    init: true\n    command: [python3, -c, 'import time; time.sleep(10**9)']\n",
    )
    .unwrap();
    let suite = dir.path().join("suite.yaml");
    std::fs::write(
        &suite,
        "suite: built\nstack: { compose: [docker-compose.yml] }\nimages:\n  stackcheck-attest-tool:ci:\n    build: { context: . }\n    labels: { tool: ci }\nservices:\n  app: { state: running }\n",
    )
    .unwrap();
    let att = dir.path().join("a.json");
    let o = stackcheck(&["run", s(&suite), "--attest", s(&att)]);
    let said = text(&o);
    assert_eq!(o.status.code(), Some(0), "{said}");
    assert!(said.contains("UNSIGNED"), "{said}");
    let (_, statement) = read(&att);
    let subjects = statement["subject"].as_array().unwrap();
    let tool = subjects
        .iter()
        .find(|s| s["name"] == "stackcheck-attest-tool:ci");
    let digest = tool.unwrap_or_else(|| panic!("{subjects:?}"))["digest"]["sha256"]
        .as_str()
        .unwrap();
    assert_eq!(digest.len(), 64, "{digest}");
    assert!(
        subjects.iter().any(|s| s["name"] == "python:3.11-slim"),
        "{subjects:?}"
    );
}
