//! What a Dockerfile's built stage declares (the final one, or a build's `target`: labels,
//! HEALTHCHECK, exec-form ENTRYPOINT/CMD, EXPOSE, base image), read without building: for
//! `init`'s promises and the static policy.

use std::collections::BTreeMap;
use std::path::Path;

/// What a Dockerfile's final stage declares, as far as it can be read without building.
#[derive(Clone, Default, Debug, PartialEq)]
pub struct Dockerfile {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) healthcheck: Option<bool>,
    pub(crate) entrypoint: Option<Vec<String>>,
    pub(crate) cmd: Option<Vec<String>>,
    pub(crate) exposes: Vec<String>,
    pub(crate) base: Option<String>,
}

impl Dockerfile {
    /// Reads the file at `path`, as built to `target` (a stage's alias) or to its end; None when
    /// it cannot be read.
    pub fn read(path: &Path, target: Option<&str>) -> Option<Dockerfile> {
        std::fs::read_to_string(path)
            .ok()
            .map(|t| Dockerfile::parse_to(&t, target))
    }

    /// Reads Dockerfile text; what it cannot read statically (shell forms, `$` values) is left out.
    pub fn parse(text: &str) -> Dockerfile {
        Dockerfile::parse_to(text, None)
    }

    /// [`Dockerfile::parse`], stopping at the end of the stage `target` names (`build.target`:
    /// what compose builds is that stage, not the last one).
    ///
    /// ```
    /// use stackcheck::engine::Dockerfile;
    /// let text = "FROM python:3.11-slim AS base\nLABEL stage=base\nFROM base AS dev\nLABEL stage=dev\n";
    /// assert_eq!(Dockerfile::parse_to(text, Some("base")), Dockerfile::parse("FROM python:3.11-slim\nLABEL stage=base\n"));
    /// assert_ne!(Dockerfile::parse_to(text, None), Dockerfile::parse_to(text, Some("base")));
    /// ```
    pub fn parse_to(text: &str, target: Option<&str>) -> Dockerfile {
        let mut d = Dockerfile::default();
        // Earlier stages by alias: `FROM <alias>` starts from what that stage declared.
        let mut stages: Vec<(String, Dockerfile)> = Vec::new();
        let mut alias: Option<String> = None;
        // Continuation lines joined; comments dropped.
        let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
        for line in joined
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            match word.to_ascii_uppercase().as_str() {
                "FROM" => {
                    // The stage that ends here is the one built: what follows is not in it.
                    if let (Some(a), Some(t)) = (&alias, target) {
                        if a.eq_ignore_ascii_case(t) {
                            return d;
                        }
                    }
                    if let Some(a) = alias.take() {
                        stages.push((a, std::mem::take(&mut d)));
                    }
                    let mut parts = rest.split_whitespace().filter(|p| !p.starts_with("--"));
                    let image = parts.next().unwrap_or_default().to_string();
                    d = match stages
                        .iter()
                        .rev()
                        .find(|(a, _)| a.eq_ignore_ascii_case(&image))
                    {
                        Some((_, stage)) => Dockerfile { ..stage.clone() },
                        None => Dockerfile {
                            base: (!image.contains('$') && image != "scratch").then_some(image),
                            ..Dockerfile::default()
                        },
                    };
                    if let (Some(kw), Some(a)) = (parts.next(), parts.next()) {
                        if kw.eq_ignore_ascii_case("as") {
                            alias = Some(a.to_string());
                        }
                    }
                }
                "LABEL" => {
                    for (k, v) in label_pairs(rest) {
                        if !k.contains('$') && !v.contains('$') {
                            d.labels.insert(k, v);
                        }
                    }
                }
                "HEALTHCHECK" => d.healthcheck = Some(!rest.eq_ignore_ascii_case("none")),
                "ENTRYPOINT" => {
                    d.entrypoint = exec_form(rest);
                    d.cmd = None; // ENTRYPOINT resets an inherited CMD
                }
                "CMD" => d.cmd = exec_form(rest),
                "EXPOSE" => {
                    for p in rest.split_whitespace().filter(|p| !p.contains('$')) {
                        let p = if p.contains('/') {
                            p.to_string()
                        } else {
                            format!("{p}/tcp")
                        };
                        if !d.exposes.contains(&p) {
                            d.exposes.push(p);
                        }
                    }
                }
                _ => {}
            }
        }
        d
    }
}

/// `ENTRYPOINT ["a", "b"]` → the list; the shell form is left out (its exact array is `/bin/sh -c …`).
fn exec_form(rest: &str) -> Option<Vec<String>> {
    serde_json::from_str::<Vec<String>>(rest).ok()
}

/// `key=value key2="a b"` (and the legacy `LABEL key value`).
fn label_pairs(rest: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    let word = |chars: &mut std::iter::Peekable<std::str::Chars>, stop_at_eq: bool| {
        let mut s = String::new();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => s.extend(chars.next()),
                    '"' => break,
                    c => s.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || (stop_at_eq && c == '=') {
                    break;
                }
                s.push(c);
                chars.next();
            }
        }
        s
    };
    if !rest.contains('=') {
        let mut chars = rest.chars().peekable();
        let k = word(&mut chars, false);
        let v: String = chars
            .collect::<String>()
            .trim()
            .trim_matches('"')
            .to_string();
        return vec![(k, v)];
    }
    loop {
        let k = word(&mut chars, true);
        if k.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            break;
        }
        let v = word(&mut chars, false);
        out.push((k, v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stage_metadata_is_read() {
        let d = Dockerfile::parse(
            "FROM python:3.11 AS build\nLABEL stage=build\nRUN make\n\
             FROM python:3.11-slim\nLABEL maintainer=\"MT5 Team\" version=1.0 \\\n  org.opencontainers.image.title=api\n\
             EXPOSE 8000\nHEALTHCHECK --interval=30s CMD curl -f http://localhost:8000/ || exit 1\n\
             ENTRYPOINT [\"python3\"]\nCMD [\"-m\", \"api\"]\n",
        );
        assert_eq!(d.base.as_deref(), Some("python:3.11-slim"));
        assert_eq!(
            d.labels.get("maintainer").map(String::as_str),
            Some("MT5 Team")
        );
        assert_eq!(d.labels.get("version").map(String::as_str), Some("1.0"));
        assert!(d.labels.contains_key("org.opencontainers.image.title"));
        assert!(
            !d.labels.contains_key("stage"),
            "labels of an earlier stage do not reach the image"
        );
        assert_eq!(d.healthcheck, Some(true));
        assert_eq!(d.entrypoint, Some(vec!["python3".to_string()]));
        assert_eq!(d.cmd, Some(vec!["-m".to_string(), "api".to_string()]));
        assert_eq!(d.exposes, ["8000/tcp"]);
    }

    #[test]
    fn shell_forms_and_stage_bases_are_left_out() {
        let d = Dockerfile::parse(
            "FROM debian:12 AS b\nLABEL a=1\nFROM b\nCMD python app.py\nHEALTHCHECK NONE\n",
        );
        assert_eq!(
            d.base.as_deref(),
            Some("debian:12"),
            "a stage's base is the image's base"
        );
        assert_eq!(d.labels.get("a").map(String::as_str), Some("1"));
        assert_eq!(d.cmd, None);
        assert_eq!(d.healthcheck, Some(false));
    }
}
