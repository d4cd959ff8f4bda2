//! `images.<tag>.files`: a path of the image filesystem is `present`, `absent`, or has attributes
//! (`mode`, `owner`, `contains`, `sha256`, each optional), as container-structure-test promises
//! them. Every value is checked as it is read, so a typo is an error at its line and column.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::{Pattern, Presence};

/// One entry of `files:`.
#[derive(Clone, Debug, JsonSchema)]
#[serde(untagged)]
pub enum FileSpec {
    /// `present` or `absent`.
    Presence(Presence),
    /// The path exists with these attributes.
    Attrs(FileAttrs),
}

impl FileSpec {
    /// Whether the path must exist.
    pub fn wants_present(&self) -> bool {
        !matches!(self, FileSpec::Presence(Presence::Absent))
    }
}

/// What a file of the image must be like; every key is optional.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileAttrs {
    /// Permission bits in octal, as `ls -l` and `chmod` write them: `"0755"`.
    #[serde(default)]
    pub(crate) mode: Option<FileMode>,
    /// `uid:gid` (`"0:0"`), a user id alone, or names (`root:root`) as the image's archive
    /// records them.
    #[serde(default)]
    pub(crate) owner: Option<Owner>,
    /// Text or `/regex/` the file's content must contain.
    #[serde(default)]
    pub(crate) contains: Option<ContentPattern>,
    /// The SHA-256 of the file's content, 64 hex digits.
    #[serde(default)]
    pub(crate) sha256: Option<Sha256>,
}

impl<'de> Deserialize<'de> for FileSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FileSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`present`, `absent` or a map of `mode`, `owner`, `contains`, `sha256`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FileSpec, E> {
                match v {
                    "present" => Ok(FileSpec::Presence(Presence::Present)),
                    "absent" => Ok(FileSpec::Presence(Presence::Absent)),
                    other => Err(E::custom(format!(
                        "expected `present`, `absent` or a map of `mode`, `owner`, `contains`, `sha256`, got `{other}`"
                    ))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FileSpec, A::Error> {
                // Through the map's own deserializer: errors keep their key and position.
                FileAttrs::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(FileSpec::Attrs)
            }
        }
        d.deserialize_any(V)
    }
}

/// Permission bits (`0o7777` at most).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl FromStr for FileMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let digits = s.strip_prefix("0o").unwrap_or(s);
        match u32::from_str_radix(digits, 8) {
            Ok(m) if (3..=5).contains(&digits.len()) && m <= 0o7777 => Ok(FileMode(m)),
            _ => Err(format!(
                "expected an octal mode such as \"0755\" (quoted), got `{s}`"
            )),
        }
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// A file's owner: user and (optionally) group, each an id or a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub(crate) user: String,
    pub(crate) group: Option<String>,
}

impl FromStr for Owner {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        };
        let (user, group) = match s.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (s, None),
        };
        if !ok(user) || group.is_some_and(|g| !ok(g)) {
            return Err(format!(
                "expected `uid:gid` such as \"0:0\", a uid, or `user:group` names, got `{s}`"
            ));
        }
        Ok(Owner {
            user: user.into(),
            group: group.map(Into::into),
        })
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.group {
            Some(g) => write!(f, "{}:{g}", self.user),
            None => f.write_str(&self.user),
        }
    }
}

/// A SHA-256 digest as 64 lowercase hex digits (an optional `sha256:` prefix is dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sha256(pub String);

impl FromStr for Sha256 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s).to_ascii_lowercase();
        if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Sha256(hex))
        } else {
            Err(format!("expected 64 hex digits (a SHA-256), got `{s}`"))
        }
    }
}

/// Text or `/regex/`, compiled when the suite is read.
#[derive(Clone, Debug)]
pub struct ContentPattern(pub Pattern);

impl FromStr for ContentPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Pattern::new(s)
            .map(ContentPattern)
            .map_err(|e| e.to_string())
    }
}

from_str_serde!(
    FileMode,
    "octal permission bits, quoted: \"0755\"",
    "^(0o)?[0-7]{3,5}$"
);
from_str_serde!(
    Owner,
    "uid:gid, a uid, or user:group names",
    "^[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)?$"
);
from_str_serde!(Sha256, "64 hex digits", "^(sha256:)?[0-9a-fA-F]{64}$");
from_str_serde!(ContentPattern, "text, or /regex/", ".*");

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("0755", 0o755)]
    #[case("644", 0o644)]
    #[case("04755", 0o4755)]
    #[case("0o600", 0o600)]
    fn modes_read_as_octal(#[case] text: &str, #[case] bits: u32) {
        assert_eq!(text.parse::<FileMode>().unwrap(), FileMode(bits));
    }

    #[rstest]
    fn bad_modes_are_refused(#[values("0789", "75", "rwxr-xr-x", "077777", "")] bad: &str) {
        assert!(bad.parse::<FileMode>().is_err(), "{bad}");
    }

    #[rstest]
    #[case("0:0", "0", Some("0"))]
    #[case("root:root", "root", Some("root"))]
    #[case("1000", "1000", None)]
    fn owners(#[case] text: &str, #[case] user: &str, #[case] group: Option<&str>) {
        let o: Owner = text.parse().unwrap();
        assert_eq!((o.user.as_str(), o.group.as_deref()), (user, group));
    }

    #[rstest]
    fn bad_owners_and_digests_are_refused(#[values(":0", "a b", "0:")] owner: &str) {
        assert!(owner.parse::<Owner>().is_err(), "{owner}");
        assert!("9f86d0".parse::<Sha256>().is_err());
    }
}
