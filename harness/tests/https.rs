//! HTTP checks as deep as the APIs they test (issue 17): an HTTPS JSON API with its own test CA
//! (made here with rcgen), a bearer token from an env file and a JSON POST. The conforming suite
//! uses every v1.1 http key and passes; the same checks against a stack broken in one respect per
//! check fail exactly, each with the message a person can act on; the token never shows.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

mod common;
use common::{fixture, test_status, valid_report};

/// A CA: its issuer (to sign with) and its certificate in PEM.
fn ca(name: &str) -> (Issuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (Issuer::new(params, key), pem)
}

/// A server certificate for `names`, signed by `issuer`, written as `<stem>.pem` and
/// `<stem>-key.pem`; `expired` puts its validity in the past.
fn server_cert(
    dir: &Path,
    stem: &str,
    names: &[&str],
    issuer: &Issuer<'_, KeyPair>,
    expired: bool,
) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{stem}-key.pem")), key.serialize_pem()).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The fixture and its twin in a temp dir, with fresh certificates and a fresh token.
struct Stack {
    _dir: tempfile::TempDir,
    conforming: PathBuf,
    broken: PathBuf,
    token: String,
}

fn stack() -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let conforming = dir.path().join("https-api");
    let broken = dir.path().join("broken/https-api");
    copy_dir(&fixture("https-api"), &conforming);
    copy_dir(&fixture("broken/https-api"), &broken);
    let certs = conforming.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (issuer, ca_pem) = ca("stackcheck test CA");
    std::fs::write(certs.join("ca.pem"), ca_pem).unwrap();
    let names = ["api", "localhost"];
    server_cert(&certs, "server", &names, &issuer, false);
    server_cert(&certs, "expired", &names, &issuer, true);
    server_cert(&certs, "wrong-name", &["billing.internal"], &issuer, false);
    let (rogue, _) = ca("another CA");
    server_cert(&certs, "rogue", &names, &rogue, false);
    let token = format!("tok-{:016x}", rand::random::<u64>());
    std::fs::write(conforming.join(".env"), format!("API_TOKEN={token}\n")).unwrap();
    Stack {
        _dir: dir,
        conforming,
        broken,
        token,
    }
}

/// `stackcheck run` with every report; exit code, everything it wrote, and the JSON report.
fn run(suite: &Path, token: &str) -> (Option<i32>, String, serde_json::Value) {
    let out_dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stackcheck"));
    cmd.args(["run", "-v"]).arg(suite.join("suite.yaml"));
    let (code, all) = common::run_with_reports(cmd, out_dir.path(), token);
    assert!(all.contains("(run "), "no run id in:\n{all}");
    (code, all, valid_report(&out_dir.path().join("r.json")))
}

#[test]
fn every_http_key_passes_on_a_conforming_https_api() {
    let s = stack();
    let (code, all, _) = run(&s.conforming, &s.token);
    assert_eq!(code, Some(0), "{all}");
}

#[test]
fn each_http_key_fails_exactly_where_the_api_breaks_it() {
    let s = stack();
    let (code, all, report) = run(&s.broken, &s.token);
    assert_eq!(code, Some(1), "{all}");
    let expected: &[(&str, &str)] = &[
        ("the certificate on 8444 is current", "TLS: the server's certificate has expired"),
        ("the certificate on 8445 names the service", "TLS: the server's certificate is not valid for `api` (it names billing.internal"),
        ("the certificate on 8446 comes from the stack's CA", "TLS: the server's certificate is not signed by a trusted CA (unknown issuer"),
        ("an old path redirects to health", "expected status 200, got 404"),
        ("a transfer without the token is refused", "expected status 401, got 201"),
        ("a transfer points to where it lives", "header `location`: expected /^/transfers/[0-9]+$/, got `/orders/7`"),
        ("a transfer costs a fee of 1", "jsonpath `$.fee`: expected 1, found 2"),
        ("a transfer's items are a-numbered", "jsonpath `$.items[*].id` at $['items'][1]['id'] (one of 2 nodes): expected /^a[0-9]$/, found \"b2\""),
        ("a transfer names its currency", "jsonpath `$.currency` selected nothing in the body"),
        ("a transfer reports no error", "body must not match /error/, but line 1 does:"),
        ("a transfer answers within 2s", "more than `within: 2s`"),
        ("the self-test says nothing deprecated", "stdout must not match /deprecated/, but line 2 does: config key `tls_cert` is deprecated"),
        ("the self-test warns of nothing", "stderr must not match /^Warning/, but line 1 does: Warning: certificate expires in 3 days"),
        ("the self-test takes under 10s", "more than `within: 10s`"),
        ("a one-off self-test says nothing deprecated", "stdout must not match /deprecated/"),
        ("the api starts without a traceback", "the log of `api` must not match /Traceback/, but line 1 does: Traceback (most recent call last):"),
    ];
    let failed = common::failed_in(&report);
    let want: Vec<String> = expected
        .iter()
        .map(|(n, _)| format!("broken-https-api::checks::{n}"))
        .collect();
    let mut got = failed.clone();
    got.sort();
    let mut want_sorted: Vec<&str> = want.iter().map(String::as_str).collect();
    want_sorted.sort();
    assert_eq!(got, want_sorted, "{all}");
    for (name, needle) in expected {
        let t = test_status(&report, &format!("broken-https-api::checks::{name}"));
        let message = t["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{name}: {message}");
    }
    // The failure that quoted the token's line shows it masked.
    let t = test_status(
        &report,
        "broken-https-api::checks::a transfer reports no error",
    );
    assert!(
        t["message"]
            .as_str()
            .unwrap()
            .contains("retried once for Bearer ****"),
        "{t}"
    );
}
