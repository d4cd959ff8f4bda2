//! `stackcheck init`: a starting suite written from an existing compose project — every service's
//! state, image, documented ports, networks and dependencies, the networks with their subnets,
//! the named volumes, built images with the metadata their Dockerfiles declare, every policy rule
//! at `warn`, and commented examples of `checks`. Everything it writes is read from the compose
//! model and the Dockerfiles, so the suite passes against the stack it came from; what it cannot
//! know (what the documentation promises beyond that) is left to the author. A quiet service (no
//! healthcheck, port or restart policy) is promised to stay up when its image or command names a
//! server (`servers`), and left commented out for its author otherwise.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

use crate::engine::{Compose, ComposeError, ComposeModel, Dockerfile, CONFIG_TIMEOUT};

mod container;
mod logs;
mod look;
mod observe;
mod persist;
mod servers;
mod topology;
pub use observe::{observe, ObserveError, ObserveRequest, Observed, Written};
pub use servers::{server, Server};

/// What `init` was asked for.
pub struct InitRequest {
    /// The compose files, in `-f` order.
    pub compose: Vec<PathBuf>,
    /// An env file for interpolation, as `--env-file`.
    pub env_file: Option<PathBuf>,
    /// Where the suite will be written (paths in it are relative to its folder).
    pub output: PathBuf,
    /// The suite id; default: the compose project's folder name.
    pub name: Option<String>,
}

/// The suite's text, or why the compose files could not be read.
pub async fn scaffold(req: &InitRequest) -> Result<String, ComposeError> {
    let model = model(req).await?;
    Ok(render(&model, req, None))
}

/// The compose model of the project `init` reads.
async fn model(req: &InitRequest) -> Result<ComposeModel, ComposeError> {
    let compose = Compose {
        project: "stackcheck-init".into(),
        files: req.compose.clone(),
        env_file: req.env_file.clone(),
        env: BTreeMap::new(),
        override_file: None,
        profiles: Vec::new(),
        endpoint: None,
    };
    compose.config(CONFIG_TIMEOUT).await
}

fn absolute(p: &Path) -> PathBuf {
    let p = if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    };
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The folder holding the first compose file, as an id (`my-app`).
fn default_id(files: &[PathBuf]) -> String {
    let dir = files
        .first()
        .map(|f| absolute(f))
        .and_then(|f| {
            f.parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().to_string())
        })
        .unwrap_or_else(|| "stack".into());
    let id: String = dir
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if id.is_empty() {
        "stack".into()
    } else {
        id
    }
}

/// `to` relative to `from` (both absolute), with `..` where needed.
fn relative(to: &Path, from: &Path) -> String {
    let (to_parts, from_parts): (Vec<Component>, Vec<Component>) =
        (to.components().collect(), from.components().collect());
    let common = to_parts
        .iter()
        .zip(&from_parts)
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = PathBuf::new();
    for _ in common..from_parts.len() {
        out.push("..");
    }
    for c in &to_parts[common..] {
        out.push(c);
    }
    out.to_string_lossy().to_string()
}

/// A YAML scalar: bare when unambiguous, else JSON-quoted (valid YAML).
fn q(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./@".contains(c))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !matches!(
            s,
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|i| q(i)).collect::<Vec<_>>().join(", ")
    )
}

/// The suite: what the compose model says, and with `observed`, what held while the stack ran.
fn render(model: &ComposeModel, req: &InitRequest, observed: Option<&Observed>) -> String {
    let suite_dir = absolute(req.output.parent().unwrap_or(Path::new(".")));
    let id = req.name.clone().unwrap_or_else(|| default_id(&req.compose));
    let mut y = render_stack(model, req, &suite_dir, &id, observed.is_some());
    render_images(model, &mut y);
    render_services(model, observed, &mut y);
    render_topology(model, &mut y);
    match observed {
        Some(o) => o.render_checks(&mut y),
        None => render_examples(model, &mut y),
    }
    render_policy(&mut y);
    y
}

/// The header comment, the suite id and `stack:` (compose files, env file, profiled services).
fn render_stack(
    model: &ComposeModel,
    req: &InitRequest,
    suite_dir: &Path,
    id: &str,
    observed: bool,
) -> String {
    let mut y = String::new();
    let given: Vec<String> = req
        .compose
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    let files: Vec<String> = req
        .compose
        .iter()
        .map(|f| relative(&absolute(f), suite_dir))
        .collect();
    let what = match observed {
        true => "what the compose files say and what held twice while the stack ran",
        false => "what the compose files say",
    };
    let _ = writeln!(
        y,
        "# Written by `stackcheck init {}`: {what}, as promises.\n\
         # Review it against your documentation (it is what the docs promise that counts), add the\n\
         # `checks` that prove behaviour, then: stackcheck run {}",
        given.join(" "),
        req.output.display()
    );
    let _ = writeln!(y, "suite: {}", q(id));
    let _ = writeln!(y, "stack:\n  compose: {}", list(&files));
    if let Some(env) = &req.env_file {
        let _ = writeln!(y, "  env_file: {}", q(&relative(&absolute(env), suite_dir)));
    }
    let profiled: Vec<&String> = model
        .services
        .iter()
        .filter(|(_, s)| !s.profiles.is_empty())
        .map(|(n, _)| n)
        .collect();
    if !profiled.is_empty() {
        let _ =
            writeln!(
            y,
            "  # Behind a profile, not started (list them under `stack.services` to include): {}",
            profiled.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    y
}

/// `images:`: each built image with the metadata its Dockerfile declares.
fn render_images(model: &ComposeModel, y: &mut String) {
    let images = built_images(model);
    if !images.is_empty() {
        let _ = writeln!(
            *y,
            "\n# Built images, with the metadata their Dockerfiles declare.\nimages:"
        );
        for (tag, service, facts) in &images {
            let _ = writeln!(*y, "  {}:\n    service: {}", q(tag), q(service));
            render_dockerfile(facts, y);
        }
    }
}

/// `services:`: each service not behind a profile with its state, image, ports, networks, restart
/// policy and dependencies; one whose state only its author knows is written commented out.
fn render_services(model: &ComposeModel, observed: Option<&Observed>, y: &mut String) {
    let _ = writeln!(*y, "\nservices:");
    let completes = completes_successfully(model);
    let mut promised = 0;
    for (name, s) in model.services.iter().filter(|(_, s)| s.profiles.is_empty()) {
        let known = server(s, Path::new("."));
        let seen = observed.and_then(|o| o.states.get(name));
        let state = seen.and_then(|seen| seen.state.as_deref());
        let (b, unknowable) = render_service(name, s, completes.contains(name), state);
        if let Some(seen) = seen {
            // Watched: what held is the promise; what did not is left to the author, saying why.
            let _ = writeln!(*y, "  # {}", seen.note);
            if state.is_some() {
                y.push_str(&b);
                seen.render_env(y);
                promised += 1;
            } else {
                for line in b.lines() {
                    let _ = writeln!(*y, "  # {}", line.strip_prefix("  ").unwrap_or(line));
                }
            }
        } else if let Some(k) = known.as_ref().filter(|_| !completes.contains(name)) {
            let _ = writeln!(*y, "  # {} by {}: a server, it stays up", k.what, k.by);
            y.push_str(&b);
            promised += 1;
        } else if unknowable {
            let _ = writeln!(
                *y,
                "  # `{name}` has no healthcheck, published port or restart policy: a one-shot job\n  \
                 # (state \"exited:0\"), or a long-running service (state running)? Uncomment and say which."
            );
            for line in b.lines() {
                let _ = writeln!(*y, "  # {}", line.strip_prefix("  ").unwrap_or(line));
            }
        } else {
            y.push_str(&b);
            promised += 1;
        }
    }
    if promised == 0 {
        *y = y.replacen("\nservices:\n", "\nservices: {}\n", 1);
    }
}

/// One service's promises, and whether its state is one only its author can tell (no
/// healthcheck, published port or restart policy: a one-shot job or a quiet worker).
fn render_service(
    name: &str,
    s: &crate::engine::ModelService,
    completes: bool,
    observed: Option<&str>,
) -> (String, bool) {
    let mut b = String::new();
    let _ = writeln!(b, "  {}:", q(name));
    let state = if let Some(seen) = observed {
        seen
    } else if completes {
        "exited:0"
    } else if s.has_healthcheck(Path::new(".")) {
        "healthy"
    } else {
        "running"
    };
    // No healthcheck, no published port, no restart policy: a one-shot job (`compose run`)
    // or a quiet worker; only the author knows which, so the promise is left to them.
    let unknowable = state == "running"
        && !s.ports.iter().any(|p| p.published.is_some())
        && matches!(s.restart_policy().as_deref(), None | Some("no"));
    let _ = writeln!(b, "    state: {}", q(state));
    if let Some(image) = &s.image {
        let _ = writeln!(b, "    image: {}", q(image));
    }
    let ports: Vec<String> = s
        .ports
        .iter()
        .filter(|p| p.published.as_deref().is_some_and(|h| !h.is_empty()))
        .map(|p| {
            let mut m = format!("{}:{}", p.published.clone().unwrap_or_default(), p.target);
            if let Some(ip) = p
                .host_ip
                .as_deref()
                .filter(|ip| !ip.is_empty() && *ip != "0.0.0.0")
            {
                m = format!("{ip}:{m}");
            }
            if let Some(proto) = p.protocol.as_deref().filter(|p| *p != "tcp") {
                m.push('/');
                m.push_str(proto);
            }
            m
        })
        .collect();
    if !ports.is_empty() && !completes && !state.starts_with("exited") {
        let _ = writeln!(b, "    ports: {}", list(&ports));
    }
    if let Some(nets) = &s.networks {
        if s.network_mode.is_none() {
            let _ = writeln!(
                b,
                "    networks: {}",
                list(&nets.keys().cloned().collect::<Vec<_>>())
            );
        }
    }
    if let Some(r) = s.restart_policy().as_deref() {
        let _ = writeln!(b, "    restart: {}", q(r));
    }
    if !s.depends_on.is_empty() {
        let deps: Vec<String> = s
            .depends_on
            .iter()
            .map(|(d, c)| {
                format!(
                    "{}: {}",
                    q(d),
                    q(if c.condition.is_empty() {
                        "service_started"
                    } else {
                        &c.condition
                    })
                )
            })
            .collect();
        let _ = writeln!(b, "    depends_on: {{ {} }}", deps.join(", "));
    }
    (b, unknowable)
}

/// `networks:` and `volumes:`: those the project defines (not external ones).
fn render_topology(model: &ComposeModel, y: &mut String) {
    let networks: Vec<(&String, &crate::engine::ModelNetwork)> = model
        .networks
        .iter()
        .filter(|(n, net)| !net.external && *n != "default")
        .collect();
    if !networks.is_empty() {
        let _ = writeln!(*y, "\nnetworks:");
        for (name, net) in networks {
            let mut keys = Vec::new();
            if let Some(d) = &net.driver {
                keys.push(format!("driver: {}", q(d)));
            }
            if let Some(sub) = net
                .ipam
                .as_ref()
                .and_then(|i| i.config.first())
                .and_then(|c| c.subnet.clone())
            {
                keys.push(format!("subnet: {}", q(&sub)));
            }
            if net.internal {
                keys.push("internal: true".into());
            }
            let _ = writeln!(*y, "  {}: {{ {} }}", q(name), keys.join(", "));
        }
    }
    let volumes: Vec<String> = model
        .volumes
        .iter()
        .filter(|(_, v)| !v.external)
        .map(|(n, _)| n.clone())
        .collect();
    if !volumes.is_empty() {
        let _ = writeln!(*y, "\nvolumes: {}", list(&volumes));
    }
}

/// Commented example checks on the likeliest service, and every policy rule at `warn`.
fn render_examples(model: &ComposeModel, y: &mut String) {
    let example = model
        .services
        .iter()
        .find(|(_, s)| s.profiles.is_empty() && s.build.is_some() && !s.ports.is_empty())
        .or_else(|| {
            model
                .services
                .iter()
                .find(|(_, s)| s.profiles.is_empty() && !s.ports.is_empty())
        })
        .or_else(|| model.services.iter().find(|(_, s)| s.profiles.is_empty()));
    let (svc, port) = example
        .map(|(n, s)| {
            (
                n.as_str(),
                s.ports.first().map(|p| p.target).unwrap_or(8080),
            )
        })
        .unwrap_or(("app", 8080));
    let _ = writeln!(
        *y,
        "\n# Behaviour your documentation promises; each check is one test (`<suite>::checks::<name>`).\n\
         # See docs/suite-format.md for every kind (http, tcp, exec, reach, isolated, logs, run, state,\n\
         # from_host, files, steps) and docs/writing-a-suite.md for a walk-through.\n\
         # checks:\n\
         #   - name: {svc} answers\n\
         #     http: {{ service: {svc}, port: {port}, path: / }}\n\
         #     expect: {{ status: 200 }}\n\
         #     retry: {{ for: 30s, every: 1s }}\n\
         #   - name: {svc} logs that it started\n\
         #     logs: {{ service: {svc}, contains: \"started\", within: 30s }}\n\
         #   - name: {svc} comes back after a crash\n\
         #     steps:\n\
         #       - kill: {{ service: {svc}, signal: KILL }}\n\
         #       - state: {{ service: {svc}, is: running, within: 30s }}"
    );
}

/// Every policy rule at `warn`.
fn render_policy(y: &mut String) {
    let _ = writeln!(
        *y,
        "\n# Release-gate rules over the compose files: `warn` reports, `error` fails, `off` skips.\n\
         policy:\n  no_latest_tags: warn\n  healthcheck_on_long_running: warn\n  no_default_credentials: warn\n  databases_not_on_all_interfaces: warn\n  resource_limits: warn\n  pinned_images: warn"
    );
}

/// One-shot jobs: services another service waits for with `service_completed_successfully`.
fn completes_successfully(model: &ComposeModel) -> Vec<String> {
    model
        .services
        .values()
        .flat_map(|s| &s.depends_on)
        .filter(|(_, d)| d.condition == "service_completed_successfully")
        .map(|(n, _)| n.clone())
        .collect()
}

/// (key, service, what its Dockerfile declares) for every service that builds an image: the key is
/// its `image:`, else the service's name (then only the promise's name, as `plan::image_of` says).
fn built_images(model: &ComposeModel) -> Vec<(String, String, Dockerfile)> {
    let mut out = Vec::new();
    for (name, s) in &model.services {
        let Some(build) = &s.build else {
            continue;
        };
        // Without `image:` compose names the build after the run's project; the key is a label.
        let key = s.image.clone().unwrap_or_else(|| name.clone());
        if out.iter().any(|(t, _, _)| *t == key) {
            continue;
        }
        let dockerfile = build.dockerfile_path(Path::new("."));
        let facts = Dockerfile::read(&dockerfile, build.target.as_deref()).unwrap_or_default();
        out.push((key, name.clone(), facts));
    }
    out
}

/// The metadata a Dockerfile declares, as `images.<tag>` promises.
fn render_dockerfile(d: &Dockerfile, y: &mut String) {
    if !d.labels.is_empty() {
        let pairs: Vec<String> = d
            .labels
            .iter()
            .map(|(k, v)| format!("{}: {}", q(k), serde_json::to_string(v).unwrap_or_default()))
            .collect();
        let _ = writeln!(y, "    labels: {{ {} }}", pairs.join(", "));
    }
    if let Some(h) = d.healthcheck {
        let _ = writeln!(
            y,
            "    healthcheck: {}",
            if h { "present" } else { "absent" }
        );
    }
    if let Some(e) = &d.entrypoint {
        let _ = writeln!(y, "    entrypoint: {}", list(e));
    }
    if let Some(c) = &d.cmd {
        let _ = writeln!(y, "    cmd: {}", list(c));
    }
    if !d.exposes.is_empty() {
        let _ = writeln!(y, "    exposes: {}", list(&d.exposes));
    }
    if let Some(b) = &d.base {
        let _ = writeln!(y, "    base: {}", q(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_to_the_suite() {
        assert_eq!(
            relative(Path::new("/r/fx/a/c.yml"), Path::new("/r/suites")),
            "../fx/a/c.yml"
        );
        assert_eq!(relative(Path::new("/r/c.yml"), Path::new("/r")), "c.yml");
        assert_eq!(q("redis:7"), "\"redis:7\"");
        assert_eq!(q("mt5-net"), "mt5-net");
        assert_eq!(q("no"), "\"no\"");
    }
}
