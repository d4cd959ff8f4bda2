//! The compose model as `validate` (and `run`, before it starts) reads it, kept on disk keyed by
//! everything compose reads to make it: every compose file, the files they include or extend and
//! the env files they name (contents, not dates), the env file, the variables the files mention
//! (and `COMPOSE_*`), the suite's env and profiles, and the compose binary. A start of compose
//! costs more than all of `validate` otherwise; a key that cannot be made certain (a file path
//! that is itself interpolated, YAML we cannot read) means no cache, never a guess.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::Compose;

/// Files compose reads for one project, at most (a loop of includes ends here).
const MAX_FILES: usize = 64;

/// The cache key of `compose`'s model (`interpolate`: as `config` or `config --no-interpolate`),
/// or None when it cannot be made certain.
pub(crate) fn key(compose: &Compose, plugin: &Path, interpolate: bool) -> Option<String> {
    let mut parts: Vec<(String, String)> = vec![
        ("stackcheck".into(), env!("CARGO_PKG_VERSION").into()),
        ("interpolate".into(), interpolate.to_string()),
        ("compose".into(), binary_identity(plugin)?),
        ("profiles".into(), compose.profiles.join(",")),
    ];
    for (k, v) in &compose.env {
        parts.push((format!("stack.env {k}"), v.clone()));
    }
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    // (file, whether it is a compose file whose references lead further)
    let mut todo: Vec<(PathBuf, bool)> = compose.files.iter().map(|f| (f.clone(), true)).collect();
    // The project's `.env`, unless an env file is given.
    let project_dir = compose.files.first()?.parent()?.to_path_buf();
    let env_file = compose
        .env_file
        .clone()
        .unwrap_or_else(|| project_dir.join(".env"));
    parts.push(("env file".into(), env_file.display().to_string()));
    text_part(&env_file, &mut parts, &mut names);
    while let Some((file, is_compose)) = todo.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        if seen.len() > MAX_FILES {
            return None;
        }
        let Some(text) = text_part(&file, &mut parts, &mut names) else {
            continue;
        };
        if is_compose {
            let dir = file.parent()?.to_path_buf();
            let refs = references(&text)?;
            names.extend(refs.from_env);
            let files = refs.compose.into_iter().map(|f| (f, true));
            for (r, further) in files.chain(refs.env_files.into_iter().map(|f| (f, false))) {
                // A path made of variables is known only once interpolated: no certain key.
                if r.contains('$') {
                    return None;
                }
                todo.push((dir.join(r), further));
            }
        }
    }
    for name in names {
        parts.push((
            format!("env {name}"),
            std::env::var(&name).unwrap_or_default(),
        ));
    }
    for (k, v) in std::env::vars().filter(|(k, _)| k.starts_with("COMPOSE_")) {
        parts.push((format!("env {k}"), v));
    }
    parts.sort();
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    for (k, v) in &parts {
        for piece in [k.as_bytes(), b"\0", v.as_bytes(), b"\0"] {
            digest.update(piece);
        }
    }
    Some(
        digest
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// Adds `file`'s content (or that it is missing) to the key, and the variables it mentions.
fn text_part(
    file: &Path,
    parts: &mut Vec<(String, String)>,
    names: &mut BTreeSet<String>,
) -> Option<String> {
    match std::fs::read_to_string(file) {
        Ok(text) => {
            names.extend(variables(&text));
            parts.push((format!("file {}", file.display()), text.clone()));
            Some(text)
        }
        Err(_) => {
            parts.push((format!("file {}", file.display()), "\0missing".into()));
            None
        }
    }
}

/// `$NAME` and `${NAME…}` in a text (`$$` is a literal dollar).
fn variables(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
        .expect("a valid pattern");
    re.captures_iter(text)
        .filter_map(|c| c.get(2).or_else(|| c.get(3)))
        .map(|m| m.as_str().to_string())
        .collect()
}

/// What a compose file makes compose read besides itself.
#[derive(Debug, Default, PartialEq)]
struct References {
    /// `include` paths and `extends.file`s: compose files, read the same way.
    compose: Vec<String>,
    /// Env files (of `include` entries and services): their content and `${VAR}`s count.
    env_files: Vec<String>,
    /// Variables an `environment` entry without a value takes from the environment.
    from_env: Vec<String>,
}

/// The [`References`] of a compose file; None when its YAML cannot be read as compose reads it.
fn references(text: &str) -> Option<References> {
    let doc: serde_json::Value = serde_saphyr::from_str(text).ok()?;
    let mut refs = References::default();
    let strings = |v: &serde_json::Value, out: &mut Vec<String>| match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(items) => {
            for i in items {
                match i {
                    serde_json::Value::String(s) => out.push(s.clone()),
                    serde_json::Value::Object(o) => {
                        if let Some(serde_json::Value::String(p)) = o.get("path") {
                            out.push(p.clone());
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    };
    for inc in doc
        .get("include")
        .and_then(|i| i.as_array())
        .into_iter()
        .flatten()
    {
        match inc {
            serde_json::Value::String(s) => refs.compose.push(s.clone()),
            serde_json::Value::Object(o) => {
                if let Some(p) = o.get("path") {
                    strings(p, &mut refs.compose);
                }
                if let Some(e) = o.get("env_file") {
                    strings(e, &mut refs.env_files);
                }
                // Another project directory changes how its paths resolve: not certain.
                if o.contains_key("project_directory") {
                    return None;
                }
            }
            _ => return None,
        }
    }
    let services: BTreeMap<String, serde_json::Value> = doc
        .get("services")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    for s in services.values() {
        if let Some(f) = s.get("extends").and_then(|e| e.get("file")) {
            strings(f, &mut refs.compose);
        }
        if let Some(e) = s.get("env_file") {
            strings(e, &mut refs.env_files);
        }
        match s.get("environment") {
            Some(serde_json::Value::Array(items)) => refs.from_env.extend(
                items
                    .iter()
                    .filter_map(|i| i.as_str())
                    .filter(|i| !i.contains('='))
                    .map(str::to_string),
            ),
            Some(serde_json::Value::Object(map)) => refs.from_env.extend(
                map.iter()
                    .filter(|(_, v)| v.is_null())
                    .map(|(k, _)| k.clone()),
            ),
            _ => {}
        }
    }
    Some(refs)
}

/// Size and modification time of the compose binary: a new compose may resolve files otherwise.
fn binary_identity(plugin: &Path) -> Option<String> {
    let meta = std::fs::metadata(plugin).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!(
        "{} {} {}",
        plugin.display(),
        meta.len(),
        modified.as_nanos()
    ))
}

/// Where cached models live: `$XDG_CACHE_HOME/stackcheck/models`, else `~/.cache/…`.
fn dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("stackcheck").join("models"))
}

/// The model JSON cached under `key`.
pub(crate) fn get(key: &str) -> Option<String> {
    std::fs::read_to_string(dir()?.join(format!("{key}.json"))).ok()
}

/// Keeps `json` under `key` (written whole, then renamed: a reader never sees half of it). The
/// model holds interpolated values, secrets among them: only the user may read it.
pub(crate) fn put(key: &str, json: &str) {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let Some(dir) = dir() else { return };
    if std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .is_err()
    {
        return;
    }
    let tmp = dir.join(format!("{key}.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(json.as_bytes()));
    if written.is_ok() {
        let _ = std::fs::rename(&tmp, dir.join(format!("{key}.json")));
    } else {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_and_references_are_found_as_compose_reads_them() {
        let names = variables("image: ${IMG:-app}:$TAG\nx: $$LITERAL ${A}");
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["A", "IMG", "TAG"]);
        let refs = references(
            "include:\n  - inc.yml\n  - path: [a.yml, b.yml]\n    env_file: inc.env\nservices:\n  web:\n    extends: { file: base.yml, service: web }\n    env_file: [web.env, { path: more.env }]\n    environment: [FROM_SHELL, SET=1]\n  db:\n    environment: { PGPASS: null, X: y }\n",
        )
        .unwrap();
        assert_eq!(refs.compose, ["inc.yml", "a.yml", "b.yml", "base.yml"]);
        assert_eq!(refs.env_files, ["inc.env", "web.env", "more.env"]);
        assert_eq!(refs.from_env, ["PGPASS", "FROM_SHELL"]);
        assert_eq!(
            references("include:\n  - path: x.yml\n    project_directory: ..\n"),
            None
        );
    }
}
