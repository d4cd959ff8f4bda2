//! Image metadata promises, read from the engine's image inspect, and file promises read from the
//! image filesystem through a created, never started container (no shell needed).

use std::collections::BTreeMap;

use super::Verdict;
use crate::engine::Engine;
use crate::plan::ImagePromise;
use crate::suite::parse_size;
use crate::suite::{HealthcheckSpec, ImageSpec, Presence};

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
        ImagePromise::Labels => {
            let labels = config.labels.unwrap_or_default();
            for (k, want) in &spec.labels {
                match labels.get(k) {
                    Some(got) if got == want => {}
                    Some(got) => {
                        return Verdict::fail(format!("label {k}={got:?}, expected {want:?}"))
                    }
                    None => {
                        return Verdict::fail(format!("label {k} is missing (expected {want:?})"))
                    }
                }
            }
            Verdict::pass(format!("{} labels as documented", spec.labels.len()))
        }
        ImagePromise::Healthcheck => {
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
                                diffs.push(format!(
                                    "{what} {} (expected {})",
                                    show(got),
                                    show(Some(w))
                                ));
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
        ImagePromise::Entrypoint => {
            equal_list("entrypoint", spec.entrypoint.as_deref(), config.entrypoint)
        }
        ImagePromise::Cmd => equal_list("cmd", spec.cmd.as_deref(), config.cmd),
        ImagePromise::User => {
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
        ImagePromise::Exposes => {
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
        ImagePromise::Files => {
            let mut wrong = Vec::new();
            for (path, want) in &spec.files {
                match engine.image_has_path(tag, path, labels).await {
                    Ok(found) if found == (*want == Presence::Present) => {}
                    Ok(found) => wrong.push(format!(
                        "{path} is {} (expected {})",
                        if found { "present" } else { "absent" },
                        present_word(*want)
                    )),
                    Err(e) => return Verdict::fail(e.to_string()),
                }
            }
            if wrong.is_empty() {
                Verdict::pass(format!("{} paths as documented", spec.files.len()))
            } else {
                Verdict::fail(format!("in the image filesystem: {}", wrong.join("; ")))
            }
        }
        ImagePromise::Base => {
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
        ImagePromise::MaxSize => {
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

fn present_word(p: Presence) -> &'static str {
    match p {
        Presence::Present => "present",
        Presence::Absent => "absent",
    }
}
