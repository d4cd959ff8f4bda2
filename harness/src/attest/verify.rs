//! `stackcheck verify`: an attestation is accepted only when its signature is the given key's over
//! DSSE's pre-authentication encoding, it is an in-toto statement with the test-result predicate,
//! the gate passed, every image asked about is among its subjects, and the files on disk are the
//! ones it records. Each condition that does not hold is a [`Refusal`] saying which.

use super::dsse::{Envelope, PAYLOAD_TYPE};
use super::keys::PublicKey;
use super::statement::{
    ResourceDescriptor, Statement, TestVerdict, STATEMENT_TYPE, TEST_RESULT_TYPE,
};

/// What a verification is asked to hold.
///
/// ```
/// use stackcheck::attest::{Envelope, Statement, Verification, VerifyError};
/// let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA+XJKRLVfKkXHVJxcXqthKEQvxQQ5AYa1USUbfxfuuSw=\n-----END PUBLIC KEY-----\n";
/// let key = stackcheck::attest::PublicKey::from_pem(pem, "pub.pem").unwrap();
/// let statement = serde_json::to_vec(&Statement::of_run(&[], Vec::new(), None)).unwrap();
/// let unsigned = serde_json::to_vec(&Envelope::new(&statement, None)).unwrap();
/// let Err(VerifyError::Refused(why)) = Verification::new(key).verify(&unsigned) else { panic!() };
/// assert_eq!(why[0].to_string(), "the envelope carries no signature");
/// ```
#[derive(Clone, Debug)]
pub struct Verification {
    key: PublicKey,
    images: Vec<(String, String)>,
    files: Option<Vec<ResourceDescriptor>>,
    strict: bool,
}

/// Why an attestation is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Not a DSSE envelope of an in-toto statement at all (exit 2).
    #[error("{0}")]
    Malformed(String),
    /// Conditions that do not hold (exit 1).
    #[error("{}", .0.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("; "))]
    Refused(Vec<Refusal>),
}

/// A condition of [`Verification`] that does not hold.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// No signature at all.
    #[error("the envelope carries no signature")]
    Unsigned,
    /// No signature is the key's over the envelope as it stands.
    #[error("no signature verifies with the key {key_id}: signed by another key, or changed after signing")]
    Signature {
        /// The id of the key given.
        key_id: String,
    },
    /// Not an in-toto payload.
    #[error("the payload type is `{0}`, not `{PAYLOAD_TYPE}`")]
    PayloadType(String),
    /// Not an in-toto Statement v1.
    #[error("the statement type is `{0}`, not `{STATEMENT_TYPE}`")]
    StatementType(String),
    /// Not the test-result predicate.
    #[error("the predicate type is `{0}`, not `{TEST_RESULT_TYPE}`")]
    PredicateType(String),
    /// The gate did not pass.
    #[error("the run did not pass: result {result}, failed: {}", if failed.is_empty() { "none listed (a test did not run, or the run could not be carried out)".to_string() } else { failed.join(", ") })]
    NotPassed {
        /// The recorded result.
        result: TestVerdict,
        /// The tests that failed.
        failed: Vec<String>,
    },
    /// `--strict`: the gate passed with warnings.
    #[error("the run passed with warnings (--strict asks for PASSED): {}", warned.join(", "))]
    Warned {
        /// The tests that warned.
        warned: Vec<String>,
    },
    /// An image asked about is not a subject.
    #[error("image `{image}` (sha256:{digest}) is not among the images the run ran")]
    ImageNotTested {
        /// As asked about.
        image: String,
        /// Its sha256 (image ID or registry digest), hex.
        digest: String,
    },
    /// A file differs from the one the run was made from.
    #[error(
        "`{file}` is not what the run was made from: sha256 {now} on disk, {recorded} recorded"
    )]
    FileChanged {
        /// The file.
        file: String,
        /// Its sha256 on disk.
        now: String,
        /// Its sha256 in the attestation.
        recorded: String,
    },
    /// A file the suite names now is not among those the run recorded.
    #[error("`{file}` is not among the files the run was made from")]
    FileNotRecorded {
        /// The file.
        file: String,
    },
}

impl Verification {
    /// Verification of the signature of `key`, the statement's types and its result.
    pub fn new(key: PublicKey) -> Verification {
        Verification {
            key,
            images: Vec::new(),
            files: None,
            strict: false,
        }
    }

    /// Also: the image `name`, whose sha256 (its image ID or a registry digest) is `digest`,
    /// is among the subjects.
    pub fn image(mut self, name: &str, digest: &str) -> Verification {
        let digest = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.images.push((name.to_string(), digest.to_string()));
        self
    }

    /// Also: each of `files` (as on disk now) is recorded with the same digest.
    pub fn files(mut self, files: Vec<ResourceDescriptor>) -> Verification {
        self.files = Some(files);
        self
    }

    /// Also: the result is `PASSED`, not `WARNED`.
    pub fn strict(mut self, strict: bool) -> Verification {
        self.strict = strict;
        self
    }

    /// The statement of the envelope in `json`, if every condition holds.
    pub fn verify(&self, json: &[u8]) -> Result<Statement, VerifyError> {
        let envelope: Envelope = serde_json::from_slice(json)
            .map_err(|e| VerifyError::Malformed(format!("not a DSSE envelope: {e}")))?;
        let payload = envelope
            .payload()
            .map_err(|e| VerifyError::Malformed(format!("the payload is not base64: {e}")))?;
        let mut refused = Vec::new();
        if envelope.payload_type != PAYLOAD_TYPE {
            refused.push(Refusal::PayloadType(envelope.payload_type.clone()));
        }
        if envelope.signatures.is_empty() {
            refused.push(Refusal::Unsigned);
        } else if !envelope.signed_by(&self.key) {
            refused.push(Refusal::Signature {
                key_id: self.key.key_id(),
            });
        }
        let statement: Statement = serde_json::from_slice(&payload).map_err(|e| {
            VerifyError::Malformed(format!("the payload is not an in-toto statement: {e}"))
        })?;
        refused.extend(self.judge(&statement));
        match refused.is_empty() {
            true => Ok(statement),
            false => Err(VerifyError::Refused(refused)),
        }
    }

    /// The conditions on the statement itself.
    fn judge(&self, s: &Statement) -> Vec<Refusal> {
        let mut refused = Vec::new();
        if s.statement_type != STATEMENT_TYPE {
            refused.push(Refusal::StatementType(s.statement_type.clone()));
        }
        if s.predicate_type != TEST_RESULT_TYPE {
            refused.push(Refusal::PredicateType(s.predicate_type.clone()));
        }
        let p = &s.predicate;
        match p.result {
            TestVerdict::Failed => refused.push(Refusal::NotPassed {
                result: p.result,
                failed: p.failed_tests.clone(),
            }),
            TestVerdict::Warned if self.strict => refused.push(Refusal::Warned {
                warned: p.warned_tests.clone(),
            }),
            _ => {}
        }
        for (image, digest) in &self.images {
            if !s.subject.iter().any(|d| d.sha256_digest() == Some(digest)) {
                refused.push(Refusal::ImageNotTested {
                    image: image.clone(),
                    digest: digest.clone(),
                });
            }
        }
        for file in self.files.iter().flatten() {
            let recorded = p.configuration.iter().find(|c| c.name == file.name);
            match recorded.and_then(|r| r.sha256_digest()) {
                None => refused.push(Refusal::FileNotRecorded {
                    file: file.name.clone(),
                }),
                Some(r) if Some(r) != file.sha256_digest() => refused.push(Refusal::FileChanged {
                    file: file.name.clone(),
                    now: file.sha256_digest().unwrap_or_default().into(),
                    recorded: r.into(),
                }),
                Some(_) => {}
            }
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attest::SigningKey;
    use std::collections::BTreeMap;

    fn key() -> SigningKey {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
        SigningKey::from_pem(&pem, "test key").unwrap()
    }

    fn statement(result: TestVerdict) -> Statement {
        Statement {
            statement_type: STATEMENT_TYPE.into(),
            subject: vec![ResourceDescriptor::sha256("api:1", "aa")],
            predicate_type: TEST_RESULT_TYPE.into(),
            predicate: super::super::TestResult {
                result,
                configuration: vec![ResourceDescriptor::sha256("suite.yaml", "11")],
                url: None,
                passed_tests: vec!["s::a".into()],
                warned_tests: vec!["s::w".into()],
                failed_tests: Vec::new(),
            },
        }
    }

    fn envelope(s: &Statement, key: Option<&SigningKey>) -> Vec<u8> {
        let json = serde_json::to_vec(s).unwrap();
        serde_json::to_vec(&Envelope::new(&json, key)).unwrap()
    }

    fn refusals(v: &Verification, json: &[u8]) -> Vec<Refusal> {
        match v.verify(json) {
            Err(VerifyError::Refused(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_signed_passing_statement_verifies_and_each_condition_refuses_alone() {
        let k = key();
        let v = Verification::new(k.public());
        let good = envelope(&statement(TestVerdict::Warned), Some(&k));
        assert!(v.verify(&good).is_ok());
        assert!(v.clone().image("api:1", "sha256:aa").verify(&good).is_ok());
        assert_eq!(
            refusals(&v.clone().image("web:2", "bb"), &good),
            [Refusal::ImageNotTested {
                image: "web:2".into(),
                digest: "bb".into()
            }]
        );
        assert_eq!(
            refusals(&v.clone().strict(true), &good),
            [Refusal::Warned {
                warned: vec!["s::w".into()]
            }]
        );
        let now = |hex: &str| vec![ResourceDescriptor::sha256("suite.yaml", hex)];
        assert!(v.clone().files(now("11")).verify(&good).is_ok());
        assert!(matches!(
            refusals(&v.clone().files(now("12")), &good)[..],
            [Refusal::FileChanged { .. }]
        ));
        let other = vec![ResourceDescriptor::sha256("other.yaml", "11")];
        assert!(matches!(
            refusals(&v.clone().files(other), &good)[..],
            [Refusal::FileNotRecorded { .. }]
        ));
        let failed = envelope(&statement(TestVerdict::Failed), Some(&k));
        assert!(matches!(
            refusals(&v, &failed)[..],
            [Refusal::NotPassed { .. }]
        ));
        assert_eq!(
            refusals(&v, &envelope(&statement(TestVerdict::Passed), None)),
            [Refusal::Unsigned]
        );
        let by_another = envelope(&statement(TestVerdict::Passed), Some(&key()));
        assert!(matches!(
            refusals(&v, &by_another)[..],
            [Refusal::Signature { .. }]
        ));
        let mut provenance = statement(TestVerdict::Passed);
        provenance.predicate_type = "https://slsa.dev/provenance/v1".into();
        assert!(matches!(
            refusals(&v, &envelope(&provenance, Some(&k)))[..],
            [Refusal::PredicateType(_)]
        ));
    }

    #[test]
    fn a_payload_changed_after_signing_is_refused_and_junk_is_malformed() {
        let k = key();
        let v = Verification::new(k.public());
        let mut e: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(&envelope(&statement(TestVerdict::Failed), Some(&k))).unwrap();
        let forged = serde_json::to_vec(&statement(TestVerdict::Passed)).unwrap();
        use base64::Engine as _;
        e.insert(
            "payload".into(),
            base64::engine::general_purpose::STANDARD
                .encode(forged)
                .into(),
        );
        let tampered = serde_json::to_vec(&e).unwrap();
        assert!(matches!(
            refusals(&v, &tampered)[..],
            [Refusal::Signature { .. }]
        ));
        assert!(matches!(v.verify(b"{}"), Err(VerifyError::Malformed(_))));
        let not_a_statement = serde_json::to_vec(&Envelope::new(b"[1]", Some(&k))).unwrap();
        assert!(matches!(
            v.verify(&not_a_statement),
            Err(VerifyError::Malformed(_))
        ));
    }
}
