//! The in-toto Statement v1 a run attests, with the test-result predicate
//! (`https://in-toto.io/attestation/test-result/v0.1`): the images it ran as subjects, its verdict
//! and its tests by how they ended, the files it was run from as configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::{Ending, SuiteReport};

/// The Statement's `_type`.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The test-result predicate's type.
pub const TEST_RESULT_TYPE: &str = "https://in-toto.io/attestation/test-result/v0.1";

/// An in-toto Statement whose predicate is a test result.
///
/// ```
/// use stackcheck::attest::{Statement, TestVerdict};
/// let s = Statement::of_run(&[], Vec::new(), None);
/// assert_eq!(s.predicate.result, TestVerdict::Failed); // nothing tested proves nothing
/// assert_eq!(s.predicate_type, stackcheck::attest::TEST_RESULT_TYPE);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    /// [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// What was tested: every image the run built or ran, by image ID and by registry digest.
    pub subject: Vec<ResourceDescriptor>,
    /// [`TEST_RESULT_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The run's verdict and tests.
    pub predicate: TestResult,
}

/// An in-toto ResourceDescriptor: a name with digests, a URI, annotations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceDescriptor {
    /// The image reference, or the file's path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Where it is (stackcheck's own package URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// `sha256` → hex digest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    /// What else is known of it (stackcheck's engine and compose versions).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ResourceDescriptor {
    /// `name` with its `sha256` digest (hex, no prefix).
    pub fn sha256(name: &str, hex: &str) -> ResourceDescriptor {
        ResourceDescriptor {
            name: name.to_string(),
            digest: BTreeMap::from([("sha256".to_string(), hex.to_string())]),
            ..ResourceDescriptor::default()
        }
    }

    /// Its `sha256` digest.
    pub fn sha256_digest(&self) -> Option<&str> {
        self.digest.get("sha256").map(String::as_str)
    }
}

/// The test-result predicate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    /// The run's verdict.
    pub result: TestVerdict,
    /// The files the run was made from (names and digests) and the stackcheck and engine used.
    pub configuration: Vec<ResourceDescriptor>,
    /// The CI run, when the environment names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Tests that passed at once.
    #[serde(default)]
    pub passed_tests: Vec<String>,
    /// Tests that passed with a warning: flaky, quarantined, a `warn`-level policy finding.
    #[serde(default)]
    pub warned_tests: Vec<String>,
    /// Tests that failed.
    #[serde(default)]
    pub failed_tests: Vec<String>,
}

/// The predicate's `result`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TestVerdict {
    /// Every test passed at once.
    Passed,
    /// The gate passed, with warned, flaky or quarantined tests.
    Warned,
    /// A test failed or did not run, the run could not be carried out, or nothing was tested.
    Failed,
}

impl std::fmt::Display for TestVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TestVerdict::Passed => "PASSED",
            TestVerdict::Warned => "WARNED",
            TestVerdict::Failed => "FAILED",
        })
    }
}

impl Statement {
    /// The statement of a run of `reports`, made from the files of `configuration`.
    pub fn of_run(
        reports: &[SuiteReport],
        configuration: Vec<ResourceDescriptor>,
        url: Option<String>,
    ) -> Statement {
        let mut predicate = TestResult {
            result: TestVerdict::Passed,
            configuration,
            url,
            passed_tests: Vec::new(),
            warned_tests: Vec::new(),
            failed_tests: Vec::new(),
        };
        let mut unproven = reports.is_empty();
        for r in reports {
            unproven |= r.infra_error.is_some() || r.interrupted || r.outcomes.is_empty();
            for o in &r.outcomes {
                let name = o.name.clone();
                match o.ending() {
                    Ending::Passed => predicate.passed_tests.push(name),
                    Ending::Warned | Ending::Flaky | Ending::Quarantined => {
                        predicate.warned_tests.push(name)
                    }
                    Ending::Failed => predicate.failed_tests.push(name),
                    // A test that did not run proved nothing: it is in no list, and the run fails.
                    Ending::Skipped => unproven = true,
                }
            }
        }
        predicate.result = if unproven || !predicate.failed_tests.is_empty() {
            TestVerdict::Failed
        } else if !predicate.warned_tests.is_empty() {
            TestVerdict::Warned
        } else {
            TestVerdict::Passed
        };
        Statement {
            statement_type: STATEMENT_TYPE.into(),
            subject: subjects(reports),
            predicate_type: TEST_RESULT_TYPE.into(),
            predicate,
        }
    }
}

/// Every image the run built or ran: by its image ID (the `sha256` of its config) under its
/// reference, and by each registry digest under the repository it is of.
fn subjects(reports: &[SuiteReport]) -> Vec<ResourceDescriptor> {
    let mut seen = std::collections::BTreeSet::new();
    for image in reports.iter().flat_map(|r| r.images.iter().chain(&r.built)) {
        if let Some(id) = image.id.strip_prefix("sha256:") {
            seen.insert((image.image.clone(), id.to_string()));
        }
        for d in &image.digests {
            if let Some((repo, hex)) = d.split_once("@sha256:") {
                seen.insert((repo.to_string(), hex.to_string()));
            }
        }
    }
    seen.into_iter()
        .map(|(name, hex)| ResourceDescriptor::sha256(&name, &hex))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Outcome, ServiceImage, Status};

    fn outcome(name: &str, status: Status) -> Outcome {
        Outcome {
            status,
            ..Outcome::not_run(name, "x")
        }
    }

    fn report(outcomes: Vec<Outcome>) -> SuiteReport {
        let mut r: SuiteReport = serde_json::from_str(
            r#"{"suite":"s","project":"p","run_id":"r","engine":"e","compose":"c","duration_ms":1,"outcomes":[],"infra_error":null,"interrupted":false,"about":null}"#,
        )
        .unwrap();
        r.outcomes = outcomes;
        r.images = vec![ServiceImage {
            service: "db".into(),
            image: "postgres:15".into(),
            id: format!("sha256:{}", "a".repeat(64)),
            digests: vec![format!("postgres@sha256:{}", "b".repeat(64))],
            standin: None,
            built: false,
            pulled: true,
        }];
        r.built = vec![ServiceImage {
            service: "images.tool".into(),
            image: "tool:ci".into(),
            id: format!("sha256:{}", "c".repeat(64)),
            digests: Vec::new(),
            standin: None,
            built: true,
            pulled: false,
        }];
        r
    }

    #[test]
    fn tests_are_listed_by_how_they_ended_and_the_result_follows_the_worst() {
        let flaky = Outcome {
            flaky: vec!["attempt 1: 503".into()],
            ..outcome("s::checks::up", Status::Passed)
        };
        let all_passed = report(vec![outcome("s::a", Status::Passed)]);
        let warned = report(vec![outcome("s::a", Status::Passed), flaky.clone()]);
        let skipped = report(vec![
            outcome("s::a", Status::Passed),
            outcome("s::b", Status::Skipped),
        ]);
        let failed = report(vec![flaky, outcome("s::c", Status::Failed)]);
        let mut infra = report(vec![outcome("s::a", Status::Passed)]);
        infra.infra_error = Some("engine gone".into());
        let result = |r: SuiteReport| Statement::of_run(&[r], Vec::new(), None).predicate;
        assert_eq!(result(all_passed).result, TestVerdict::Passed);
        let w = result(warned);
        assert_eq!(
            (w.result, w.warned_tests),
            (TestVerdict::Warned, vec!["s::checks::up".to_string()])
        );
        let s = result(skipped);
        assert_eq!(s.result, TestVerdict::Failed);
        assert_eq!(s.passed_tests, ["s::a"], "a skipped test is in no list");
        let f = result(failed);
        assert_eq!(
            (f.result, f.failed_tests),
            (TestVerdict::Failed, vec!["s::c".to_string()])
        );
        assert_eq!(result(infra).result, TestVerdict::Failed);
    }

    #[test]
    fn every_image_built_or_run_is_a_subject_by_id_and_by_registry_digest() {
        let s = Statement::of_run(&[report(Vec::new())], Vec::new(), None);
        let subjects: Vec<(&str, &str)> = s
            .subject
            .iter()
            .map(|d| (d.name.as_str(), d.sha256_digest().unwrap()))
            .collect();
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        assert_eq!(
            subjects,
            [
                ("postgres", b.as_str()),
                ("postgres:15", a.as_str()),
                ("tool:ci", c.as_str())
            ]
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["_type"], STATEMENT_TYPE);
        assert_eq!(json["predicateType"], TEST_RESULT_TYPE);
        assert_eq!(json["predicate"]["result"], "FAILED", "no test ran");
        assert!(json["predicate"]["passedTests"].is_array());
    }
}
