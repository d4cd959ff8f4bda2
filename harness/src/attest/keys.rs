//! Ed25519 keys as `openssl` writes them: the private key in PKCS#8 PEM (`openssl genpkey
//! -algorithm ed25519`), the public key in SubjectPublicKeyInfo PEM (`openssl pkey -pubout`).

use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

/// What comes before the 32 key bytes in an Ed25519 SubjectPublicKeyInfo (RFC 8410): a sequence
/// of the algorithm `1.3.101.112` and a 33-byte bit string.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The environment variable that may hold the signing key's PEM text instead of a file.
pub const SIGN_KEY_VAR: &str = "STACKCHECK_SIGN_KEY";

/// A key that is not what it should be; never quotes the key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not PEM, or PEM of another kind.
    #[error("{from}: expected {expected} in PEM (`-----BEGIN {tag}-----`)")]
    NotPem {
        /// Where the key came from (a file, or the environment variable).
        from: String,
        /// What it should have been.
        expected: &'static str,
        /// The PEM tag it should have had.
        tag: &'static str,
    },
    /// PEM of the right kind whose key is not Ed25519.
    #[error("{from}: not an Ed25519 {what} ({why})")]
    NotEd25519 {
        /// Where the key came from.
        from: String,
        /// Private or public key.
        what: &'static str,
        /// What was wrong with it.
        why: String,
    },
    /// The file could not be read.
    #[error("{from}: {why}")]
    Unreadable {
        /// The file.
        from: String,
        /// Why it could not be read.
        why: String,
    },
}

/// An Ed25519 key pair that signs attestations.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.key_id())
    }
}

impl SigningKey {
    /// The key in PKCS#8 PEM text; `from` names where it came from, for errors.
    ///
    /// ```
    /// let err = stackcheck::attest::SigningKey::from_pem("not a key", "key.pem").unwrap_err();
    /// assert!(err.to_string().contains("PRIVATE KEY"));
    /// ```
    pub fn from_pem(text: &str, from: &str) -> Result<SigningKey, KeyError> {
        let der = pem_of(text, "PRIVATE KEY", "an Ed25519 private key", from)?;
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| KeyError::NotEd25519 {
                from: from.into(),
                what: "private key",
                why: e.to_string(),
            })?;
        Ok(SigningKey { pair })
    }

    /// The key of `--sign-key FILE`, else of the environment variable [`SIGN_KEY_VAR`]; `None`
    /// when neither is given.
    pub fn from_flag_or_env(
        file: Option<&std::path::Path>,
    ) -> Result<Option<SigningKey>, KeyError> {
        if let Some(file) = file {
            let from = file.display().to_string();
            let text = std::fs::read_to_string(file).map_err(|e| KeyError::Unreadable {
                from: from.clone(),
                why: e.to_string(),
            })?;
            return SigningKey::from_pem(&text, &from).map(Some);
        }
        match std::env::var(SIGN_KEY_VAR) {
            Ok(text) if !text.trim().is_empty() => {
                SigningKey::from_pem(&text, SIGN_KEY_VAR).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        let mut key = [0u8; 32];
        key.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey { key }
    }

    /// The key's id: the hex `sha256` of its public key's SubjectPublicKeyInfo.
    pub fn key_id(&self) -> String {
        self.public().key_id()
    }
}

/// An Ed25519 public key that verifies attestations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: [u8; 32],
}

impl PublicKey {
    /// The key in SubjectPublicKeyInfo PEM text; `from` names where it came from, for errors.
    pub fn from_pem(text: &str, from: &str) -> Result<PublicKey, KeyError> {
        let der = pem_of(text, "PUBLIC KEY", "an Ed25519 public key", from)?;
        let not = |why: &str| KeyError::NotEd25519 {
            from: from.into(),
            what: "public key",
            why: why.into(),
        };
        let key = der
            .strip_prefix(&SPKI_PREFIX[..])
            .ok_or_else(|| not("another algorithm"))?;
        let key: [u8; 32] = key.try_into().map_err(|_| not("not 32 bytes"))?;
        Ok(PublicKey { key })
    }

    /// Whether `signature` is this key's over `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, self.key)
            .verify(message, signature)
            .is_ok()
    }

    /// The key's id: the hex `sha256` of its SubjectPublicKeyInfo.
    pub fn key_id(&self) -> String {
        let mut spki = SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&self.key);
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &spki))
    }

    /// The key in SubjectPublicKeyInfo PEM, as `openssl pkey -pubout` writes it.
    pub fn to_pem(&self) -> String {
        let mut spki = SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&self.key);
        pem::encode(&pem::Pem::new("PUBLIC KEY", spki))
    }
}

/// The DER inside `text`'s PEM block tagged `tag`.
fn pem_of(
    text: &str,
    tag: &'static str,
    expected: &'static str,
    from: &str,
) -> Result<Vec<u8>, KeyError> {
    let not_pem = || KeyError::NotPem {
        from: from.into(),
        expected,
        tag,
    };
    let block = pem::parse(text.trim()).map_err(|_| not_pem())?;
    if block.tag() != tag {
        return Err(not_pem());
    }
    Ok(block.into_contents())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway test key `openssl genpkey -algorithm ed25519` wrote (PKCS#8 v1, no public key
    /// inside), and what `openssl pkey -pubout` printed of it.
    const OPENSSL_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINKqNmD/BB2gDImc6NkEK1QlSJDH+l5yW31Vi8nID0TB\n-----END PRIVATE KEY-----\n";
    const OPENSSL_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA+XJKRLVfKkXHVJxcXqthKEQvxQQ5AYa1USUbfxfuuSw=\n-----END PUBLIC KEY-----\n";

    #[test]
    fn an_openssl_key_signs_and_its_public_pem_verifies() {
        let key = SigningKey::from_pem(OPENSSL_KEY, "k").unwrap();
        let public = PublicKey::from_pem(OPENSSL_PUBLIC, "p").unwrap();
        assert_eq!(key.public(), public);
        assert_eq!(public.to_pem().replace("\r\n", "\n"), OPENSSL_PUBLIC);
        let sig = key.sign(b"payload");
        assert!(public.verifies(b"payload", &sig));
        assert!(!public.verifies(b"payloaD", &sig));
        assert_eq!(public.key_id(), key.key_id());
    }

    #[test]
    fn a_key_of_the_wrong_kind_is_refused_without_quoting_it() {
        let public_as_private = SigningKey::from_pem(
            &SigningKey::from_pem(OPENSSL_KEY, "k")
                .unwrap()
                .public()
                .to_pem(),
            "pub.pem",
        )
        .unwrap_err();
        assert!(public_as_private
            .to_string()
            .starts_with("pub.pem: expected an Ed25519 private key"));
        let private_as_public = PublicKey::from_pem(OPENSSL_KEY, "key.pem").unwrap_err();
        assert!(
            !private_as_public.to_string().contains("MC4CAQ"),
            "{private_as_public}"
        );
    }
}
