//! Which variable names say their value is a secret. One rule for every reader: masking hides such
//! values, and the `no_default_credentials` policy flags them when written as literals.

/// Name parts that mark a secret wherever they appear (`DB_PASSWORD`, `GITHUB_TOKEN`).
const SECRET_PARTS: [&str; 5] = ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIAL"];

/// Whether a variable name says its value is a secret: it contains one of `SECRET_PARTS`, or
/// it names a key (`API_KEY`, `SIGNING_KEY`, `APIKEY`). A name that only mentions a key on the way
/// to something else (`CONNECT_KEY_CONVERTER`, `KEY_FILE`) holds no secret itself.
pub fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    SECRET_PARTS.iter().any(|p| name.contains(p))
        || name == "KEY"
        || name.ends_with("_KEY")
        || name.ends_with("APIKEY")
}

#[cfg(test)]
mod tests {
    use super::looks_secret;

    #[test]
    fn secret_names() {
        for name in [
            "DB_PASSWORD",
            "POSTGRES_PASSWD",
            "AWS_SECRET_ACCESS_KEY",
            "github_token",
            "api_token",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "KEEPA_API_KEY",
            "SIGNING_KEY",
            "PRIVATE_KEY",
            "STRIPE_APIKEY",
        ] {
            assert!(looks_secret(name), "{name}");
        }
        for name in [
            "CONNECT_KEY_CONVERTER",
            "KEY_FILE",
            "DATABASE_URL",
            "PORT",
            "MONKEY_MODE",
            "DB_USER",
            "LOG_LEVEL",
        ] {
            assert!(!looks_secret(name), "{name}");
        }
    }
}
