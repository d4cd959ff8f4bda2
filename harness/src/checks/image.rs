//! Image metadata promises, read from the engine's image inspect (no container needed).

use super::{parse_size, Verdict};
use crate::engine::Engine;
use crate::plan::ImagePromise;
use crate::suite::{ImageSpec, Presence};

pub async fn check_image(engine: &Engine, tag: &str, promise: &ImagePromise, spec: &ImageSpec) -> Verdict {
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
                    Some(got) => return Verdict::fail(format!("label {k}={got:?}, expected {want:?}")),
                    None => return Verdict::fail(format!("label {k} is missing (expected {want:?})")),
                }
            }
            Verdict::pass(format!("{} labels as documented", spec.labels.len()))
        }
        ImagePromise::Healthcheck => {
            let test = config.healthcheck.and_then(|h| h.test).unwrap_or_default();
            let present = !test.is_empty() && test.first().map(String::as_str) != Some("NONE");
            match (spec.healthcheck, present) {
                (Some(Presence::Present), true) => Verdict::pass(format!("HEALTHCHECK {test:?}")),
                (Some(Presence::Absent), false) | (None, _) => Verdict::pass("no HEALTHCHECK"),
                (Some(Presence::Present), false) => Verdict::fail("expected a HEALTHCHECK, the image has none"),
                (Some(Presence::Absent), true) => Verdict::fail(format!("expected no HEALTHCHECK, the image has {test:?}")),
            }
        }
        ImagePromise::Entrypoint => equal_list("entrypoint", spec.entrypoint.as_deref(), config.entrypoint),
        ImagePromise::Cmd => equal_list("cmd", spec.cmd.as_deref(), config.cmd),
        ImagePromise::User => {
            let got = config.user.unwrap_or_default();
            let want = spec.user.as_deref().unwrap_or_default();
            let root = got.is_empty() || got == "root" || got == "0" || got.starts_with("0:") || got.starts_with("root:");
            let ok = if want == "non-root" { !root } else { got == want };
            if ok {
                Verdict::pass(format!("user `{}`", if got.is_empty() { "root (default)" } else { &got }))
            } else {
                Verdict::fail(format!("expected user `{want}`, the image runs as `{}`", if got.is_empty() { "root (default)" } else { &got }))
            }
        }
        ImagePromise::Exposes => {
            let mut got: Vec<String> = config.exposed_ports.unwrap_or_default().into_iter().collect();
            got.sort();
            let mut want = spec.exposes.clone().unwrap_or_default();
            want.sort();
            if got == want {
                Verdict::pass(format!("exposes {got:?}"))
            } else {
                Verdict::fail(format!("expected exposed ports {want:?}, the image exposes {got:?}"))
            }
        }
        ImagePromise::MaxSize => {
            let limit = spec.max_size.as_deref().and_then(parse_size).unwrap_or(u64::MAX);
            let size = image.size.unwrap_or(0).max(0) as u64;
            let mib = |b: u64| b as f64 / 1024.0 / 1024.0;
            if size <= limit {
                Verdict::pass(format!("{:.0} MiB ≤ {:.0} MiB", mib(size), mib(limit)))
            } else {
                Verdict::fail(format!("image is {:.0} MiB, more than the documented {:.0} MiB", mib(size), mib(limit)))
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
