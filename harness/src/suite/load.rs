//! Reading a suite file: strict YAML with positions, then semantic validation.

use std::path::{Path, PathBuf};

use serde_saphyr::Error as YamlError;

use super::{rules, LoadedSuite, Suite};
pub use crate::error::SuiteError;

/// Suites are small; anything larger is refused before parsing.
const MAX_SUITE_BYTES: u64 = 1024 * 1024;

/// Reads a suite file and holds it to the suite's own rules: exit 2 material on any error, with its
/// position. Commands load through `plan::load_file`, which adds what needs the test names.
pub fn read_file(path: &Path) -> Result<LoadedSuite, SuiteError> {
    let io = |source| SuiteError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(SuiteError::invalid(path, None, "not a regular file"));
    }
    if meta.len() > MAX_SUITE_BYTES {
        return Err(SuiteError::invalid(
            path,
            None,
            format!(
                "suite is {} bytes; the limit is {MAX_SUITE_BYTES}",
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let (line, col) = position_of(&e.as_bytes()[..e.utf8_error().valid_up_to()]);
        SuiteError::invalid(path, Some((line, col)), "suite is not valid UTF-8")
    })?;
    let loaded = load_str(path, &text)?;
    rules::files_exist(&loaded)?;
    rules::requests_resolve(&loaded)?;
    rules::placeholders_stay_inside(&loaded)?;
    Ok(loaded)
}

/// Parses suite text as if it were read from `path` (used by tests and by `read_file`).
pub fn load_str(path: &Path, text: &str) -> Result<LoadedSuite, SuiteError> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_depth: 64, max_nodes: 100_000 },
    };
    let super::extensions::SuiteFile(suite) =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| yaml_error(path, &e))?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let loaded = LoadedSuite {
        path: path.to_path_buf(),
        dir,
        suite,
    };
    rules::validate(&loaded, text)?;
    Ok(loaded)
}

fn position_of(prefix: &[u8]) -> (u64, u64) {
    let line = prefix.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let col = prefix.iter().rev().take_while(|b| **b != b'\n').count() as u64 + 1;
    (line, col)
}

fn yaml_error(path: &Path, err: &YamlError) -> SuiteError {
    let mut inner = err;
    loop {
        match inner {
            YamlError::WithSnippet { error, .. } => inner = error,
            #[allow(deprecated)]
            YamlError::AliasError { error, .. } => inner = error,
            _ => break,
        }
    }
    let at = err
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| (l.line(), l.column()));
    let message = match inner {
        YamlError::SerdeUnknownField {
            field, expected, ..
        } => unknown(field, "key", expected),
        YamlError::SerdeUnknownVariant {
            variant, expected, ..
        } => unknown(variant, "value", expected),
        YamlError::SerdeMissingField { field, .. } => format!("missing required key `{field}`"),
        other => strip_location(&other.to_string()),
    };
    SuiteError::invalid(path, at, message)
}

/// `unknown key `fo`; did you mean `foo`? (expected one of ...)`
pub(crate) fn unknown(got: &str, what: &str, expected: &[&str]) -> String {
    let mut msg = format!("unknown {what} `{got}`");
    if let Some(best) = nearest(got, expected.iter().copied()) {
        msg.push_str(&format!("; did you mean `{best}`?"));
    }
    if expected.is_empty() {
        msg.push_str(" (no keys are allowed here)");
    } else {
        let list: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
        msg.push_str(&format!(" (expected one of {})", list.join(", ")));
    }
    msg
}

/// The candidate closest to `got`, if close enough for a "did you mean".
pub fn nearest<'a>(got: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::levenshtein(got, c), c))
        .filter(|(d, c)| *d <= (c.len().max(got.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// serde-saphyr appends " at line X column Y"; the position is already in the prefix.
fn strip_location(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or(msg);
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

/// The JSON Schema of the suite format, for editors (`stackcheck schema`).
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Suite);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

/// Expands the command line's paths: files as given, folders to their `*.yaml`/`*.yml` (sorted).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SuiteError> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|source| SuiteError::Io {
                path: p.display().to_string(),
                source,
            })?;
            let mut found: Vec<PathBuf> = rd
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| {
                    f.is_file()
                        && matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                        && !is_compose_file(f)
                })
                .collect();
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Compose's own file names (`compose.yaml`, `docker-compose.yml`, `docker-compose.prod.yml`,
/// `compose.override.yaml`): a folder of suites usually holds the stacks they describe too.
fn is_compose_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    ["compose.", "docker-compose."]
        .iter()
        .any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_yields_its_suites_not_the_compose_files_beside_them() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "api.yaml",
            "docker-compose.yml",
            "docker-compose.prod.yml",
            "compose.yaml",
            "db.yml",
            "notes.txt",
            "my-compose.yml",
        ] {
            std::fs::write(dir.path().join(f), "").unwrap();
        }
        let found = discover(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["api.yaml", "db.yml", "my-compose.yml"]);
    }

    fn err(text: &str) -> String {
        load_str(Path::new("s.yaml"), text).unwrap_err().to_string()
    }

    const MIN: &str = "suite: x\nstack:\n  compose: [c.yml]\n";

    #[test]
    fn unknown_key_has_position_and_suggestion() {
        let e = err("suite: x\nstak:\n  compose: [c.yml]\n");
        assert!(
            e.starts_with("s.yaml:2:1: unknown key `stak`; did you mean `stack`?"),
            "{e}"
        );
    }

    #[test]
    fn nested_unknown_key() {
        let e = err(&format!("{MIN}services:\n  db:\n    stat: healthy\n"));
        assert!(
            e.starts_with("s.yaml:6:5: unknown key `stat`; did you mean `state`?"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_has_position() {
        let e = err("suite: x\nstack:\n  compose: 3\n");
        assert!(e.starts_with("s.yaml:3:"), "{e}");
    }

    #[test]
    fn missing_required_key() {
        let e = err("suite: x\n");
        assert!(e.contains("missing required key `stack`"), "{e}");
    }

    #[test]
    fn bad_duration() {
        let e = err(&format!("{MIN}  timeout: 5 weeks\n"));
        assert!(e.starts_with("s.yaml:4:"), "{e}");
        assert!(e.contains("invalid duration"), "{e}");
    }

    #[test]
    fn minimal_suite_loads() {
        let s = load_str(Path::new("dir/s.yaml"), MIN).unwrap();
        assert_eq!(s.suite.id, "x");
        assert_eq!(s.dir, Path::new("dir"));
    }

    #[test]
    fn committed_schema_is_current() {
        let committed = include_str!("../../suite.schema.json");
        assert_eq!(
            committed.trim(),
            schema_json().trim(),
            "run `stackcheck schema > harness/suite.schema.json`"
        );
    }

    #[test]
    fn schema_mentions_every_section() {
        let s = schema_json();
        for key in [
            "stack", "images", "services", "networks", "volumes", "checks",
        ] {
            assert!(
                s.contains(&format!("\"{key}\"")),
                "{key} missing from schema"
            );
        }
    }

    #[rstest::rstest]
    fn port_mappings_read_as_written(
        #[values("5432:5432", "127.0.0.1:8080-8081:80", "18312:5353/udp")] text: &str,
    ) {
        let p: crate::suite::PortMapping = text.parse().unwrap();
        assert_eq!(p.to_string(), text);
    }

    #[test]
    fn a_host_range_is_read_as_its_ends() {
        let range: crate::suite::PortMapping = "8080-8081:80".parse().unwrap();
        assert_eq!((range.host, range.host_last), (8080, Some(8081)));
    }

    #[rstest::rstest]
    fn bad_port_mappings_are_refused(
        #[values("8081-8080:80", "8080-:80", "0-3:80", "80:8080-8081")] bad: &str,
    ) {
        assert!(bad.parse::<crate::suite::PortMapping>().is_err(), "{bad}");
    }
}
