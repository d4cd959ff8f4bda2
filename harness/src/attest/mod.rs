//! Release-gate evidence: a run's verdict as a signed in-toto attestation a deploy step can trust.
//! One DSSE envelope (`dsse.rs`) around an in-toto Statement v1 with the test-result predicate
//! (`statement.rs`): the images the run ran as subjects, by image ID and registry digest; the
//! suite, compose and env files it was made from, by path and `sha256` (`inputs.rs`); its tests
//! by how they ended; signed with an Ed25519 key as `openssl` writes it (`keys.rs`).
//! `stackcheck verify` accepts it only when every condition holds (`verify.rs`).

mod dsse;
mod inputs;
mod keys;
mod statement;
mod verify;

pub use dsse::{pae, Envelope, Signature, PAYLOAD_TYPE};
pub use inputs::{ci_url, files, harness, InputError};
pub use keys::{KeyError, PublicKey, SigningKey, SIGN_KEY_VAR};
pub use statement::{
    ResourceDescriptor, Statement, TestResult, TestVerdict, STATEMENT_TYPE, TEST_RESULT_TYPE,
};
pub use verify::{Refusal, Verification, VerifyError};

use crate::report::SuiteReport;
use crate::suite::LoadedSuite;

/// The statement of a run of `loaded` that ended in `reports`, with the CI run's URL from the
/// process environment.
pub fn statement_of(
    loaded: &[LoadedSuite],
    reports: &[SuiteReport],
) -> Result<Statement, InputError> {
    Ok(statement(reports, files(loaded)?))
}

/// The statement of `reports` made from the files of `configuration`, with stackcheck, the
/// engine and compose that ran them, and the CI run's URL from the process environment.
pub fn statement(reports: &[SuiteReport], mut configuration: Vec<ResourceDescriptor>) -> Statement {
    let (engine, compose) = reports
        .first()
        .map(|r| (r.engine.as_str(), r.compose.as_str()))
        .unwrap_or_default();
    configuration.push(harness(engine, compose));
    let url = ci_url(&|k| std::env::var(k).ok());
    Statement::of_run(reports, configuration, url)
}

/// Writes the envelope of `statement` to `path`, signed with `key` if one is given.
pub fn write(
    path: &std::path::Path,
    statement: &Statement,
    key: Option<&SigningKey>,
) -> std::io::Result<()> {
    let json = serde_json::to_vec(statement).map_err(std::io::Error::other)?;
    let envelope = Envelope::new(&json, key);
    let text = serde_json::to_string_pretty(&envelope).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}

/// Where `run --attest` writes its evidence, and the key that signs it.
#[derive(Debug)]
pub struct AttestTo {
    /// `--attest FILE`.
    pub path: std::path::PathBuf,
    /// `--sign-key PEM`, else the PEM in [`SIGN_KEY_VAR`]; `None`: unsigned.
    pub key: Option<SigningKey>,
}

impl AttestTo {
    /// From the run's flags: the file's folder must exist and the key must be an Ed25519 key,
    /// both said before anything starts. `--sign-key` without `--attest` is a mistake too.
    pub fn from_flags(
        path: Option<std::path::PathBuf>,
        sign_key: Option<&std::path::Path>,
    ) -> Result<Option<AttestTo>, String> {
        let Some(path) = path else {
            return match sign_key {
                Some(k) => Err(format!(
                    "--sign-key {}: there is nothing to sign without --attest FILE",
                    k.display()
                )),
                None => Ok(None),
            };
        };
        crate::report::check_file_path("--attest", &path)?;
        let key = SigningKey::from_flag_or_env(sign_key).map_err(|e| e.to_string())?;
        Ok(Some(AttestTo { path, key }))
    }

    /// Writes the evidence of a run of `loaded` that ended in `reports`; what was written, for
    /// the console.
    pub fn write(&self, loaded: &[LoadedSuite], reports: &[SuiteReport]) -> Result<String, String> {
        let shown = self.path.display();
        let statement = statement_of(loaded, reports).map_err(|e| format!("--attest: {e}"))?;
        write(&self.path, &statement, self.key.as_ref())
            .map_err(|e| format!("cannot write the attestation to {shown}: {e}"))?;
        let result = statement.predicate.result;
        Ok(match &self.key {
            Some(k) => format!("attestation written to {shown} (result {result}, signed by key {})", k.key_id()),
            None => format!(
                "attestation written to {shown} (result {result}, UNSIGNED: no --sign-key and no {SIGN_KEY_VAR}; `stackcheck verify` refuses it)"
            ),
        })
    }
}

/// The sha256 a `verify --image` reference gives itself (`…@sha256:<hex>`), if it does.
pub fn given_digest(reference: &str) -> Option<&str> {
    reference.split_once("@sha256:").map(|(_, hex)| hex)
}

/// The image ID (hex) of the image the engine has under `reference` (`None`: it has none).
pub async fn image_digest(
    engine: &crate::engine::Engine,
    reference: &str,
) -> Result<Option<String>, crate::error::EngineError> {
    let image = engine.image(reference).await?;
    Ok(image
        .and_then(|i| i.id)
        .map(|id| id.trim_start_matches("sha256:").to_string()))
}
