//! Top-level `x-…` keys, as compose files have them: accepted and ignored, so that anchors and
//! merge keys can hold the pieces a suite shares (`x-api: &api { service: api, port: 8080 }`).
//! Every other key still meets the suite's strict rules, with its position.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::Suite;

/// A suite file: the suite, its `x-` keys skipped.
pub(super) struct SuiteFile(pub(super) Suite);

impl<'de> Deserialize<'de> for SuiteFile {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SuiteFile, D::Error> {
        deserializer.deserialize_map(FileVisitor)
    }
}

struct FileVisitor;

impl<'de> Visitor<'de> for FileVisitor {
    type Value = SuiteFile;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a suite (a mapping with `suite`, `stack`, …)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SuiteFile, A::Error> {
        let skipping = WithoutExtensions { map };
        Suite::deserialize(serde::de::value::MapAccessDeserializer::new(skipping)).map(SuiteFile)
    }
}

/// The entries of a mapping, but those whose key starts with `x-`.
struct WithoutExtensions<A> {
    map: A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WithoutExtensions<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(key) = self.map.next_key::<String>()? {
            if key.starts_with("x-") {
                self.map.next_value::<IgnoredAny>()?;
                continue;
            }
            return seed.deserialize(key.into_deserializer()).map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::suite::{load_str, CheckKind};

    /// Shared pieces under `x-` keys, used by alias and by merge key; the keys themselves say nothing.
    #[test]
    fn x_keys_hold_shared_pieces_and_are_ignored() {
        let text = "\
suite: s
x-api: &api { service: api, port: 8080 }
x-notes: [anything, { at: all }]
stack: { compose: [c.yml] }
checks:
  - name: health
    http: *api
  - name: deals
    http: { <<: *api, path: /deals, method: POST }
    expect: { status: 201 }
";
        let loaded = load_str(Path::new("s.yaml"), text).unwrap();
        let kinds: Vec<_> = loaded.suite.checks.iter().map(|c| &c.kind).collect();
        let (CheckKind::Http(a), CheckKind::Http(b)) = (kinds[0], kinds[1]) else {
            panic!("{kinds:?}")
        };
        assert_eq!(
            (a.service.as_str(), a.port, a.path.as_str()),
            ("api", 8080, "/")
        );
        assert_eq!(
            (b.service.as_str(), b.port, b.path.as_str()),
            ("api", 8080, "/deals")
        );
    }

    /// Any other unknown key is still refused where it stands, with a suggestion.
    #[test]
    fn other_unknown_keys_are_still_refused_with_their_position() {
        let text = "suite: s\nx-ok: 1\nstack: { compose: [c.yml] }\nchecsk: []\n";
        let e = load_str(Path::new("s.yaml"), text).unwrap_err().to_string();
        assert!(
            e.contains("s.yaml:4:1") && e.contains("unknown key `checsk`"),
            "{e}"
        );
        assert!(e.contains("did you mean `checks`"), "{e}");
        let e = load_str(
            Path::new("s.yaml"),
            "suite: s\nstack: { compose: [c.yml], x-y: 1 }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown key `x-y`"), "{e}");
    }
}
