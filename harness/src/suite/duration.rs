//! Durations in suites are strings like `500ms`, `30s`, `5m`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// A suite duration; keeps the text the author wrote so reports can echo it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Dur {
    /// Reads `500ms`, `30s`, `5m`, `1h`.
    pub fn parse(s: &str) -> Result<Dur, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let value: f64 = num.parse().map_err(|_| {
            format!(
                "invalid duration `{s}`: expected a number followed by ms, s, m or h (e.g. 30s)"
            )
        })?;
        let secs = match unit.trim() {
            "ms" => value / 1000.0,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => {
                return Err(format!(
                    "invalid duration `{s}`: unit must be one of ms, s, m, h (e.g. 30s)"
                ))
            }
        };
        if !secs.is_finite() || !(0.0..=24.0 * 3600.0).contains(&secs) {
            return Err(format!("invalid duration `{s}`: must be between 0 and 24h"));
        }
        Ok(Dur(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(60_000) && ms > 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Dur::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$",
            "description": "a duration such as 500ms, 30s, 5m"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("500ms", 500)]
    #[case("30s", 30_000)]
    #[case("5m", 300_000)]
    #[case("1.5s", 1500)]
    fn parses_units(#[case] text: &str, #[case] millis: u64) {
        assert_eq!(Dur::parse(text).unwrap().0, Duration::from_millis(millis));
    }

    #[rstest]
    fn rejects_garbage(#[values("", "5", "s", "5 weeks", "-1s", "1e9h", "99999h")] bad: &str) {
        assert!(Dur::parse(bad).is_err(), "{bad} should be rejected");
    }

    #[rstest]
    #[case("300s", "5m")]
    #[case("30s", "30s")]
    #[case("250ms", "250ms")]
    fn displays_compactly(#[case] text: &str, #[case] shown: &str) {
        assert_eq!(Dur::parse(text).unwrap().to_string(), shown);
    }
}
