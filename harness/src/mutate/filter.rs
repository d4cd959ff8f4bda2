//! `--only`: which mutants a run makes, by kind or by (the start of) a mutant's id.

use super::{Mutant, MutantKind};

/// One `--only`: a kind (`env-removed`), or a mutant's id or its start (`env-removed:api`,
/// `env-removed:api:GREETING`), so that one survivor can be run again after the suite is raised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MutantFilter {
    kind: MutantKind,
    /// The id's parts after the kind that must match, in order.
    rest: Vec<String>,
}

impl std::str::FromStr for MutantFilter {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = text.split(':');
        let head = parts.next().unwrap_or_default();
        let kind = <MutantKind as clap::ValueEnum>::from_str(head, false).map_err(|_| {
            let kinds: Vec<&str> = <MutantKind as clap::ValueEnum>::value_variants()
                .iter()
                .map(|k| k.name())
                .collect();
            format!(
                "`{text}`: `{head}` is no mutant kind (kinds: {}); a filter is KIND[:SERVICE[:PART]]",
                kinds.join(", ")
            )
        })?;
        let rest: Vec<String> = parts.map(String::from).collect();
        if rest.iter().any(String::is_empty) {
            return Err(format!(
                "`{text}`: an empty part; a filter is KIND[:SERVICE[:PART]]"
            ));
        }
        Ok(MutantFilter { kind, rest })
    }
}

impl MutantFilter {
    /// Whether the mutant is of this kind and its id starts with the filter's parts.
    pub fn selects(&self, m: &Mutant) -> bool {
        let id = m.id();
        let parts: Vec<&str> = id.split(':').skip(1).collect();
        m.kind == self.kind
            && parts.len() >= self.rest.len()
            && self.rest.iter().zip(&parts).all(|(want, got)| want == got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutate::mutants;
    use crate::mutate::mutants::tests::{facts, model};

    #[test]
    fn a_filter_selects_a_kind_or_the_mutants_whose_id_starts_with_it() {
        let all = mutants(&model(), &facts());
        let chosen = |filter: &str| -> Vec<String> {
            let f: MutantFilter = filter.parse().unwrap();
            all.iter()
                .filter(|m| f.selects(m))
                .map(Mutant::id)
                .collect()
        };
        assert_eq!(chosen("port-dropped"), ["port-dropped:api:18480:8080"]);
        assert_eq!(
            chosen("port-dropped:api:18480"),
            ["port-dropped:api:18480:8080"]
        );
        assert_eq!(
            chosen("env-removed:api:GREETING"),
            ["env-removed:api:GREETING"]
        );
        assert!(chosen("env-removed:api:GREET").is_empty());
        assert!(chosen("env-removed:cache").is_empty());
        let bad = "gone:api".parse::<MutantFilter>().unwrap_err();
        assert!(
            bad.contains("`gone` is no mutant kind") && bad.contains("env-removed"),
            "{bad}"
        );
        assert!("env-removed::x".parse::<MutantFilter>().is_err());
    }
}
