//! Image metadata promises, read from the engine's image inspect, and file promises read from the
//! image filesystem through a created, never started container (no shell needed).

use std::collections::BTreeMap;

use bollard::models::{ImageConfig as Config, ImageInspect};

use super::Verdict;
use crate::engine::Engine;
use crate::engine::FileFacts;
use crate::plan::ImagePromise;
use crate::suite::parse_size;
use crate::suite::{FileAttrs, FileMode, FileSpec, HealthcheckSpec, ImageSpec, Pattern, Presence};

pub async fn check_image(
    engine: &Engine,
    tag: &str,
    promise: &ImagePromise,
    spec: &ImageSpec,
    labels: &BTreeMap<String, String>,
) -> Verdict {
    let image = match engine.image(tag).await {
        Ok(Some(i)) => i,
        Ok(None) => return Verdict::fail(format!("image `{tag}` does not exist (was it built?)")),
        Err(e) => return Verdict::fail(e.to_string()),
    };
    let config = image.config.clone().unwrap_or_default();
    match promise {
        ImagePromise::Labels => image_labels(spec, config),
        ImagePromise::Healthcheck => healthcheck(spec, config),
        ImagePromise::Entrypoint => {
            equal_list("entrypoint", spec.entrypoint.as_deref(), config.entrypoint)
        }
        ImagePromise::Cmd => equal_list("cmd", spec.cmd.as_deref(), config.cmd),
        ImagePromise::User => user(spec, config),
        ImagePromise::Exposes => exposes(spec, config),
        ImagePromise::Files => files(engine, tag, spec, labels).await,
        ImagePromise::Env => env(spec, config),
        ImagePromise::Workdir => workdir(spec, config),
        ImagePromise::Volumes => volumes(spec, config),
        ImagePromise::Base => base(engine, spec, &image).await,
        ImagePromise::MaxSize => max_size(spec, &image),
    }
}

/// The labels the suite lists, each with its value.
fn image_labels(spec: &ImageSpec, config: Config) -> Verdict {
    let labels = config.labels.unwrap_or_default();
    for (k, want) in &spec.labels {
        match labels.get(k) {
            Some(got) if got == want => {}
            Some(got) => return Verdict::fail(format!("label {k}={got:?}, expected {want:?}")),
            None => return Verdict::fail(format!("label {k} is missing (expected {want:?})")),
        }
    }
    Verdict::pass(format!("{} labels as documented", spec.labels.len()))
}

/// The image's HEALTHCHECK: present, absent, or exactly as written.
fn healthcheck(spec: &ImageSpec, config: Config) -> Verdict {
    let hc = config.healthcheck.clone().unwrap_or_default();
    let test = hc.test.clone().unwrap_or_default();
    let present = !test.is_empty() && test.first().map(String::as_str) != Some("NONE");
    match (&spec.healthcheck, present) {
        (Some(HealthcheckSpec::Presence(Presence::Present)), true) => {
            Verdict::pass(format!("HEALTHCHECK {test:?}"))
        }
        (Some(HealthcheckSpec::Presence(Presence::Absent)), false) | (None, _) => {
            Verdict::pass("no HEALTHCHECK")
        }
        (Some(HealthcheckSpec::Presence(Presence::Present)), false)
        | (Some(HealthcheckSpec::Exact(_)), false) => {
            Verdict::fail("expected a HEALTHCHECK, the image has none")
        }
        (Some(HealthcheckSpec::Presence(Presence::Absent)), true) => {
            Verdict::fail(format!("expected no HEALTHCHECK, the image has {test:?}"))
        }
        (Some(HealthcheckSpec::Exact(want)), true) => {
            let mut diffs = Vec::new();
            // Dockerfile `CMD curl …` is stored as ["CMD-SHELL", "curl …"]; compare as written.
            if want.test != test {
                diffs.push(format!("test {:?} (expected {:?})", test, want.test));
            }
            let nanos = |d: &Option<crate::suite::Dur>| d.map(|d| d.0.as_nanos() as i64);
            for (what, want, got) in [
                ("interval", nanos(&want.interval), hc.interval),
                ("timeout", nanos(&want.timeout), hc.timeout),
                ("start_period", nanos(&want.start_period), hc.start_period),
                ("retries", want.retries, hc.retries),
            ] {
                if let Some(w) = want {
                    if got != Some(w) {
                        let show = |v: Option<i64>| match (what, v) {
                            (_, None) => "unset".to_string(),
                            ("retries", Some(n)) => n.to_string(),
                            (_, Some(n)) => format!("{}s", n as f64 / 1e9),
                        };
                        diffs.push(format!("{what} {} (expected {})", show(got), show(Some(w))));
                    }
                }
            }
            if diffs.is_empty() {
                Verdict::pass(format!("HEALTHCHECK {test:?} as documented"))
            } else {
                Verdict::fail(format!("HEALTHCHECK differs: {}", diffs.join(", ")))
            }
        }
    }
}

/// The user the image runs as (`non-root`: anything but root).
fn user(spec: &ImageSpec, config: Config) -> Verdict {
    let got = config.user.unwrap_or_default();
    let want = spec.user.as_deref().unwrap_or_default();
    let root = got.is_empty()
        || got == "root"
        || got == "0"
        || got.starts_with("0:")
        || got.starts_with("root:");
    let ok = if want == "non-root" {
        !root
    } else {
        got == want
    };
    if ok {
        Verdict::pass(format!(
            "user `{}`",
            if got.is_empty() {
                "root (default)"
            } else {
                &got
            }
        ))
    } else {
        Verdict::fail(format!(
            "expected user `{want}`, the image runs as `{}`",
            if got.is_empty() {
                "root (default)"
            } else {
                &got
            }
        ))
    }
}

/// The ports the image exposes, as a set.
fn exposes(spec: &ImageSpec, config: Config) -> Verdict {
    let mut got: Vec<String> = config
        .exposed_ports
        .unwrap_or_default()
        .into_iter()
        .collect();
    got.sort();
    let mut want = spec.exposes.clone().unwrap_or_default();
    want.sort();
    if got == want {
        Verdict::pass(format!("exposes {got:?}"))
    } else {
        Verdict::fail(format!(
            "expected exposed ports {want:?}, the image exposes {got:?}"
        ))
    }
}

/// The variables the image sets (`ENV`), each with its value.
fn env(spec: &ImageSpec, config: Config) -> Verdict {
    let set: BTreeMap<&str, &str> = config
        .env
        .iter()
        .flatten()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let wrong: Vec<String> = spec
        .env
        .iter()
        .filter(|(k, v)| set.get(k.as_str()) != Some(&v.as_str()))
        .map(|(k, v)| match set.get(k.as_str()) {
            Some(got) => format!("{k}={got:?} (expected {v:?})"),
            None => format!("{k} is not set (expected {v:?})"),
        })
        .collect();
    if wrong.is_empty() {
        Verdict::pass(format!("{} variables as documented", spec.env.len()))
    } else {
        Verdict::fail(format!("image env: {}", wrong.join(", ")))
    }
}

/// The image's working directory (unset is `/`).
fn workdir(spec: &ImageSpec, config: Config) -> Verdict {
    let got = config.working_dir.unwrap_or_default();
    let want = spec.workdir.as_deref().unwrap_or_default();
    let shown = if got.is_empty() { "/ (unset)" } else { &got };
    if got == want || (want == "/" && got.is_empty()) {
        Verdict::pass(format!("workdir {shown}"))
    } else {
        Verdict::fail(format!("expected workdir {want}, the image has {shown}"))
    }
}

/// The volumes the image declares, as a set.
fn volumes(spec: &ImageSpec, config: Config) -> Verdict {
    let mut got: Vec<String> = config.volumes.unwrap_or_default();
    got.sort();
    let mut want = spec.volumes.clone().unwrap_or_default();
    want.sort();
    if got == want {
        Verdict::pass(format!("volumes {got:?}"))
    } else {
        Verdict::fail(format!(
            "expected volumes {want:?}, the image declares {got:?}"
        ))
    }
}

/// The final stage is built on the documented base: the image's layers start with its layers.
async fn base(engine: &Engine, spec: &ImageSpec, image: &ImageInspect) -> Verdict {
    let base = spec.base.as_deref().unwrap_or_default();
    let base_layers = match engine.image(base).await {
        Ok(Some(b)) => b.root_fs.and_then(|r| r.layers).unwrap_or_default(),
        Ok(None) => {
            return Verdict::fail(format!(
                "the documented base `{base}` is not on the engine, so it cannot be compared"
            ))
        }
        Err(e) => return Verdict::fail(e.to_string()),
    };
    let layers = image
        .root_fs
        .clone()
        .and_then(|r| r.layers)
        .unwrap_or_default();
    if !base_layers.is_empty() && layers.starts_with(&base_layers) {
        Verdict::pass(format!(
            "built on `{base}` ({} of {} layers)",
            base_layers.len(),
            layers.len()
        ))
    } else {
        let shared = layers
            .iter()
            .zip(&base_layers)
            .take_while(|(a, b)| a == b)
            .count();
        Verdict::fail(format!(
            "expected the final stage to be FROM `{base}`: the image's layers do not start with its {} layers ({shared} shared)",
            base_layers.len()
        ))
    }
}

/// The image is no larger than documented.
fn max_size(spec: &ImageSpec, image: &ImageInspect) -> Verdict {
    let limit = spec
        .max_size
        .as_deref()
        .and_then(parse_size)
        .unwrap_or(u64::MAX);
    let size = image.size.unwrap_or(0).max(0) as u64;
    let mib = |b: u64| b as f64 / 1024.0 / 1024.0;
    if size <= limit {
        Verdict::pass(format!("{:.0} MiB ≤ {:.0} MiB", mib(size), mib(limit)))
    } else {
        Verdict::fail(format!(
            "image is {:.0} MiB, more than the documented {:.0} MiB",
            mib(size),
            mib(limit)
        ))
    }
}

fn equal_list(what: &str, want: Option<&[String]>, got: Option<Vec<String>>) -> Verdict {
    let want = want.unwrap_or_default();
    let got = got.unwrap_or_default();
    if got == want {
        Verdict::pass(format!("{what} {got:?}"))
    } else {
        Verdict::fail(format!("expected {what} {want:?}, the image has {got:?}"))
    }
}

/// Each path of `files:` read from the image filesystem (one created container for all of them),
/// every difference said at once.
async fn files(
    engine: &Engine,
    tag: &str,
    spec: &ImageSpec,
    labels: &BTreeMap<String, String>,
) -> Verdict {
    let fs = match engine.open_image_fs(tag, labels).await {
        Ok(fs) => fs,
        Err(e) => return Verdict::fail(e.to_string()),
    };
    let mut wrong = Vec::new();
    let mut failed = None;
    for (path, want) in &spec.files {
        let attrs = match want {
            FileSpec::Attrs(a) => Some(a),
            FileSpec::Presence(_) => None,
        };
        let content = attrs.is_some_and(|a| a.contains.is_some() || a.sha256.is_some());
        let watching: Vec<Pattern> = attrs
            .and_then(|a| a.contains.as_ref())
            .map(|c| c.0.clone())
            .into_iter()
            .collect();
        let owner = attrs.is_some_and(|a| a.owner.is_some());
        match fs.read(path, content, &watching, owner).await {
            Err(e) => {
                failed = Some(e.to_string());
                break;
            }
            Ok(None) if want.wants_present() => wrong.push(format!("{path} is absent")),
            Ok(None) => {}
            Ok(Some(_)) if !want.wants_present() => {
                wrong.push(format!("{path} is present (expected absent)"))
            }
            Ok(Some(found)) => {
                if let Some(a) = attrs {
                    wrong.extend(differences(path, a, &found));
                }
            }
        }
    }
    fs.close().await;
    if let Some(e) = failed {
        return Verdict::fail(e);
    }
    if wrong.is_empty() {
        Verdict::pass(format!("{} paths as documented", spec.files.len()))
    } else {
        Verdict::fail(format!("in the image filesystem: {}", wrong.join("; ")))
    }
}

/// How a path that exists differs from its promised attributes.
fn differences(path: &str, want: &FileAttrs, found: &FileFacts) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(m) = &want.mode {
        if m.0 != found.mode {
            out.push(format!(
                "{path} has mode {} (expected {m})",
                FileMode(found.mode)
            ));
        }
    }
    if let Some(o) = &want.owner {
        let side = |want: &str, id: u64, name: &str| want == id.to_string() || want == name;
        let user_ok = side(&o.user, found.uid, &found.user);
        let group_ok = o
            .group
            .as_deref()
            .is_none_or(|g| side(g, found.gid, &found.group));
        if !user_ok || !group_ok {
            let named = |id: u64, name: &str| match name {
                "" => id.to_string(),
                n => format!("{id} ({n})"),
            };
            out.push(format!(
                "{path} is owned by {}:{} (expected {o})",
                named(found.uid, &found.user),
                named(found.gid, &found.group)
            ));
        }
    }
    let content = found.content.as_ref();
    if (want.contains.is_some() || want.sha256.is_some()) && content.is_none() {
        out.push(format!(
            "{path} is {}, so its content cannot be judged",
            found.kind
        ));
        return out;
    }
    if let (Some(c), Some(seen)) = (&want.contains, content) {
        if seen.found(&c.0).is_none() {
            out.push(format!("{path} does not contain {}", c.0.written()));
        }
    }
    if let (Some(h), Some(got)) = (&want.sha256, &found.sha256) {
        if &h.0 != got {
            out.push(format!("{path} has sha256 {got} (expected {})", h.0));
        }
    }
    out
}
