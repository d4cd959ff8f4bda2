//! Which variable names say their value is a secret, and where a value carries one (the password
//! of a URL or DSN). One rule for every reader: masking hides such values, and the
//! `no_default_credentials` policy flags them when written as literals.

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

/// Whether a variable is named as a secret: its name looks secret, or `stack.secrets` lists it.
pub fn named_secret(name: &str, listed: &[String]) -> bool {
    looks_secret(name) || listed.iter().any(|s| s == name)
}

/// The passwords inside `value`: the `pass` of every `scheme://user:pass@host` (and
/// `redis://:pass@host`) in it. Only the authority part counts, so a `@` in a path is no password.
pub fn url_passwords(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some((_, after)) = rest.split_once("://") {
        let authority_end = after
            .find(['/', '?', '#', ' ', '"', '\'', ','])
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        if let Some((userinfo, _host)) = authority.rsplit_once('@') {
            if let Some((_user, pass)) = userinfo.split_once(':') {
                if !pass.is_empty() {
                    out.push(pass);
                }
            }
        }
        rest = &after[authority_end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{looks_secret, url_passwords};

    #[test]
    fn url_credentials() {
        assert_eq!(
            url_passwords("postgres://app:s3cret@db:5432/app"),
            ["s3cret"]
        );
        assert_eq!(
            url_passwords("redis://:cachepass@cache:6379/0"),
            ["cachepass"]
        );
        assert_eq!(
            url_passwords("primary=mysql://u:one@a/x replica=mysql://u:two@b/x"),
            ["one", "two"]
        );
        assert!(url_passwords("http://host:8080/a@b").is_empty());
        assert!(url_passwords("https://user@host/").is_empty());
        assert!(url_passwords("no url here").is_empty());
    }

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
