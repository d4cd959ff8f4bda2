//! The DSSE envelope (Dead Simple Signing Envelope) that carries a statement: its payload in
//! base64, its type, and signatures over DSSE's pre-authentication encoding, the envelope cosign
//! and in-toto verifiers read.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::keys::{PublicKey, SigningKey};

/// The payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A DSSE envelope.
///
/// ```
/// use stackcheck::attest::Envelope;
/// let e = Envelope::new(b"{}", None);
/// assert_eq!(e.payload_type, "application/vnd.in-toto+json");
/// assert!(e.signatures.is_empty());
/// assert_eq!(e.payload().unwrap(), b"{}");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// [`PAYLOAD_TYPE`].
    pub payload_type: String,
    /// The statement, base64.
    pub payload: String,
    /// Signatures over [`pae`] of the type and the payload; empty when unsigned.
    pub signatures: Vec<Signature>,
}

/// One signature of an envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// The signing key's id (hex `sha256` of its SubjectPublicKeyInfo).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    /// The signature, base64.
    pub sig: String,
}

/// DSSE's pre-authentication encoding: `DSSEv1 <len(type)> <type> <len(body)> <body>`.
///
/// ```
/// assert_eq!(stackcheck::attest::pae("t", b"hi"), b"DSSEv1 1 t 2 hi");
/// ```
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Envelope {
    /// `statement` (its JSON) in an envelope, signed with `key` if one is given.
    pub fn new(statement: &[u8], key: Option<&SigningKey>) -> Envelope {
        let signatures = key
            .map(|k| Signature {
                keyid: k.key_id(),
                sig: b64().encode(k.sign(&pae(PAYLOAD_TYPE, statement))),
            })
            .into_iter()
            .collect();
        Envelope {
            payload_type: PAYLOAD_TYPE.into(),
            payload: b64().encode(statement),
            signatures,
        }
    }

    /// The payload's bytes.
    pub fn payload(&self) -> Result<Vec<u8>, base64::DecodeError> {
        b64().decode(&self.payload)
    }

    /// Whether one of the signatures is `key`'s over the type and payload as they stand.
    pub fn signed_by(&self, key: &PublicKey) -> bool {
        let Ok(payload) = self.payload() else {
            return false;
        };
        let message = pae(&self.payload_type, &payload);
        self.signatures.iter().any(|s| {
            b64()
                .decode(&s.sig)
                .is_ok_and(|sig| key.verifies(&message, &sig))
        })
    }
}
