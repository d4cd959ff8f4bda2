//! Per-service promises: each is checked in the compose model and, where it shows at runtime,
//! on the live container.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::listen::{listen, not_listening};
use super::{Ctx, Verdict};
use crate::engine::{ModelService, ObservedState};
use crate::plan::ServicePromise;
use crate::suite::ServiceSpec;

pub async fn check_service(
    ctx: &Ctx<'_>,
    service: &str,
    promise: &ServicePromise,
    spec: &ServiceSpec,
) -> Verdict {
    let Some(model) = ctx.model.services.get(service) else {
        let known: Vec<&str> = ctx.model.services.keys().map(String::as_str).collect();
        return Verdict::fail(format!(
            "service `{service}` is not defined in the compose files (services: {})",
            known.join(", ")
        ));
    };
    match promise {
        ServicePromise::State => Verdict::fail("state is decided while the stack comes up"),
        ServicePromise::Image => check_image_name(ctx, service, spec, model).await,
        ServicePromise::Ports => check_ports(ctx, service, spec).await,
        ServicePromise::Networks => check_networks(ctx, service, spec, model).await,
        ServicePromise::Volumes => check_volumes(ctx, service, spec).await,
        ServicePromise::Restart => check_restart(ctx, service, spec, model).await,
        ServicePromise::DependsOn => check_depends_on(spec, model),
        ServicePromise::ReadOnlyMounts => {
            super::net::check_mount_writes(
                ctx,
                service,
                spec.read_only_mounts.as_deref().unwrap_or_default(),
                false,
            )
            .await
        }
        ServicePromise::WritableMounts => {
            super::net::check_mount_writes(
                ctx,
                service,
                spec.writable_mounts.as_deref().unwrap_or_default(),
                true,
            )
            .await
        }
        ServicePromise::Env => check_env(ctx, service, spec).await,
    }
}

/// The image compose names, and the one the container runs.
async fn check_image_name(
    ctx: &Ctx<'_>,
    service: &str,
    spec: &ServiceSpec,
    model: &ModelService,
) -> Verdict {
    let want = spec.image.as_deref().unwrap_or_default();
    match model.image.as_deref() {
        Some(got) if got == want => {}
        got => {
            return Verdict::fail(format!(
                "expected image `{want}`, compose uses `{}`",
                got.unwrap_or("(none)")
            ))
        }
    }
    match ctx.inspect(service).await {
        Ok((_, info)) => {
            let running = info.config.and_then(|c| c.image).unwrap_or_default();
            if running == want {
                Verdict::pass(format!("runs `{want}`"))
            } else {
                Verdict::fail(format!(
                    "expected image `{want}`, the container runs `{running}`"
                ))
            }
        }
        Err(v) => v,
    }
}

/// The networks compose attaches, and those the container is attached to.
async fn check_networks(
    ctx: &Ctx<'_>,
    service: &str,
    spec: &ServiceSpec,
    model: &ModelService,
) -> Verdict {
    let want: BTreeSet<&str> = spec.networks.iter().flatten().map(String::as_str).collect();
    let got: BTreeSet<&str> = model
        .networks
        .iter()
        .flat_map(|n| n.keys())
        .map(String::as_str)
        .collect();
    if want != got {
        return Verdict::fail(format!(
            "expected networks {want:?}, compose attaches {got:?}"
        ));
    }
    let info = match ctx.inspect(service).await {
        Ok((_, info)) => info,
        Err(v) => return v,
    };
    let attached: BTreeSet<String> = info
        .network_settings
        .and_then(|n| n.networks)
        .map(|n| n.into_keys().collect())
        .unwrap_or_default();
    for n in &want {
        let engine_name = ctx.model.network_name(n);
        if !attached.contains(&engine_name) {
            return Verdict::fail(format!(
                "the container is not attached to `{engine_name}` (attached: {attached:?})"
            ));
        }
    }
    Verdict::pass(format!("attached to {want:?}"))
}

/// The restart policy compose sets, and the container's.
async fn check_restart(
    ctx: &Ctx<'_>,
    service: &str,
    spec: &ServiceSpec,
    model: &ModelService,
) -> Verdict {
    let want = spec.restart.as_deref().unwrap_or_default();
    let got = model.restart_policy().unwrap_or_else(|| "no".into());
    if got != want {
        return Verdict::fail(format!("expected restart `{want}`, compose says `{got}`"));
    }
    let id = match ctx.container(service) {
        Ok(id) => id,
        Err(v) => return v,
    };
    let live = match ctx.engine.inspect(&id).await {
        Ok(info) => crate::engine::Engine::restart_policy(&info),
        Err(e) => return Verdict::fail(format!("cannot inspect the container: {e}")),
    };
    if live == want {
        Verdict::pass(format!("restart policy `{want}`"))
    } else {
        Verdict::fail(format!(
            "expected restart `{want}`, the container has `{live}`"
        ))
    }
}

/// Each documented dependency with its condition.
fn check_depends_on(spec: &ServiceSpec, model: &ModelService) -> Verdict {
    for (dep, cond) in spec.depends_on.iter().flatten() {
        match model.depends_on.get(dep) {
            Some(d) if &d.condition == cond => {}
            Some(d) => {
                return Verdict::fail(format!(
                    "depends on `{dep}` with condition `{}`, expected `{cond}`",
                    d.condition
                ))
            }
            None => {
                return Verdict::fail(format!(
                    "does not depend on `{dep}` (expected condition `{cond}`)"
                ))
            }
        }
    }
    Verdict::pass("dependencies as documented")
}

/// Each documented variable, as the container sees it.
async fn check_env(ctx: &Ctx<'_>, service: &str, spec: &ServiceSpec) -> Verdict {
    let id = match ctx.container(service) {
        Ok(id) => id,
        Err(v) => return v,
    };
    let env = ctx
        .engine
        .inspect(&id)
        .await
        .ok()
        .and_then(|i| i.config)
        .and_then(|c| c.env)
        .unwrap_or_default();
    for (k, v) in spec.env.iter().flatten() {
        let found = env.iter().find_map(|e| e.strip_prefix(&format!("{k}=")));
        match found {
            Some(got) if got == v => {}
            Some(got) => return Verdict::fail(format!("{k}={got}, expected {k}={v}")),
            None => {
                return Verdict::fail(format!(
                    "{k} is not set in the container (expected {k}={v})"
                ))
            }
        }
    }
    Verdict::pass("environment as documented")
}

async fn check_ports(ctx: &Ctx<'_>, service: &str, spec: &ServiceSpec) -> Verdict {
    let model = &ctx.model.services[service];
    let want: BTreeSet<String> = spec.ports.iter().flatten().map(|p| p.to_string()).collect();
    let got: BTreeSet<String> = model.ports.iter().map(|p| p.mapping()).collect();
    if want != got {
        let missing: Vec<&String> = want.difference(&got).collect();
        let extra: Vec<&String> = got.difference(&want).collect();
        return Verdict::fail(format!(
            "expected ports {:?}, compose publishes {:?} (missing {missing:?}, unexpected {extra:?})",
            want, got
        ));
    }
    // Every replica publishes and listens (`deploy.replicas`); one container otherwise.
    let ids = match ctx.replicas(service).await {
        Ok(ids) => ids,
        Err(v) => return v,
    };
    let mut live = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        if let Err(mut v) = replica_ports(ctx, service, spec, id, &mut live).await {
            if ids.len() > 1 {
                v.message = format!("replica {} of {}: {}", n + 1, ids.len(), v.message);
            }
            return v;
        }
    }
    let udp = spec.ports.iter().flatten().any(|p| p.protocol == "udp");
    let mut how = if udp {
        "each TCP port accepting connections, each UDP port bound in the container".to_string()
    } else {
        "each accepting connections".to_string()
    };
    if ids.len() > 1 {
        how.push_str(&format!(" on all {} replicas", ids.len()));
    }
    if ctx.ephemeral_ports {
        return Verdict::pass(format!(
            "compose publishes {want:?}; live on ephemeral host ports {live:?}, {how}"
        ));
    }
    Verdict::pass(format!("publishes {want:?}, {how}"))
}

/// The promised ports on one container: published (on the documented host port or, for a range,
/// one port of it; any free one with ephemeral ports), a TCP listener behind each, a socket bound
/// to each UDP one. Adds `host→container` to `live`.
async fn replica_ports(
    ctx: &Ctx<'_>,
    service: &str,
    spec: &ServiceSpec,
    id: &str,
    live: &mut Vec<String>,
) -> Result<(), Verdict> {
    let info = ctx
        .engine
        .inspect(id)
        .await
        .map_err(|e| Verdict::fail(e.to_string()))?;
    if info.state.as_ref().and_then(|s| s.running) != Some(true) {
        return Err(Verdict::fail(format!(
            "`{service}` is not running ({})",
            ObservedState::of(&info)
        )));
    }
    let bindings = info
        .network_settings
        .and_then(|n| n.ports)
        .unwrap_or_default();
    for p in spec.ports.iter().flatten() {
        let key = format!("{}/{}", p.container, p.protocol);
        let host_ports: Vec<String> = bindings
            .get(&key)
            .cloned()
            .flatten()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|b| b.host_port)
            .collect();
        let documented = |h: &String| {
            h.parse::<u16>()
                .is_ok_and(|h| (p.host..=p.host_last.unwrap_or(p.host)).contains(&h))
        };
        // Ephemeral: the run chose the host port; the documented one was proven from the model.
        let host_port = match host_ports
            .iter()
            .find(|h| ctx.ephemeral_ports || documented(h))
        {
            Some(h) => h.clone(),
            None if host_ports.is_empty() => {
                return Err(Verdict::fail(format!(
                    "{p}: container port {key} is not published at all"
                )))
            }
            None => {
                return Err(Verdict::fail(format!(
                    "{p}: container port {key} is bound to host ports {host_ports:?}, not {}",
                    p.hosts()
                )))
            }
        };
        live.push(format!("{host_port}→{key}"));
        if p.protocol == "tcp" {
            // The service is up; give a listener that binds a moment later a short, bounded grace.
            let addr = ctx.engine.published_addr(&host_port);
            let waits_on = [service.to_string()];
            let verdict = super::with_retry(
                Some((Duration::from_secs(10), Duration::from_millis(250))),
                || {
                    let addr = addr.clone();
                    async move {
                        let within = Duration::from_secs(2);
                        let seen = listen(&addr, within).await;
                        match not_listening(&seen, p.container, &addr, within) {
                            None => Verdict::pass("accepted"),
                            Some(why) => Verdict::fail(format!("{p}: {why}")),
                        }
                    }
                },
                || super::ended_for_good(ctx, &waits_on),
            )
            .await;
            if !verdict.passed {
                return Err(verdict);
            }
        }
    }
    let udp: Vec<_> = spec
        .ports
        .iter()
        .flatten()
        .filter(|p| p.protocol == "udp")
        .collect();
    if !udp.is_empty() {
        let bound = super::net::udp_bound(ctx, id).await?;
        if let Some(p) = udp.iter().find(|p| !bound.contains(&p.container)) {
            return Err(Verdict::fail(format!(
                "{p}: nothing is bound to UDP port {} in `{service}`'s network namespace (the port is published; UDP has no handshake to prove more)",
                p.container
            )));
        }
    }
    Ok(())
}

async fn check_volumes(ctx: &Ctx<'_>, service: &str, spec: &ServiceSpec) -> Verdict {
    let model = &ctx.model.services[service];
    let project_dir = ctx.loaded.dir.join(
        ctx.loaded
            .suite
            .stack
            .compose
            .first()
            .map(String::as_str)
            .unwrap_or("."),
    );
    let project_dir = project_dir.parent().unwrap_or(Path::new("."));
    let id = match ctx.container(service) {
        Ok(id) => id,
        Err(v) => return v,
    };
    let mounts = ctx
        .engine
        .inspect(&id)
        .await
        .ok()
        .and_then(|i| i.mounts)
        .unwrap_or_default();
    for entry in spec.volumes.iter().flatten() {
        let parts: Vec<&str> = entry.split(':').collect();
        let (source, target, ro) = match parts.as_slice() {
            [s, t] => (*s, *t, false),
            [s, t, mode] => (*s, *t, mode.split(',').any(|m| m == "ro")),
            _ => {
                return Verdict::fail(format!(
                    "invalid volume `{entry}`: expected source:target[:ro]"
                ))
            }
        };
        let is_bind = source.starts_with('.') || source.starts_with('/');
        let expected_source = if is_bind {
            std::fs::canonicalize(project_dir.join(source))
                .unwrap_or_else(|_| project_dir.join(source))
                .display()
                .to_string()
        } else {
            source.to_string()
        };
        let declared = model.volumes.iter().find(|v| v.target == target);
        match declared {
            Some(v)
                if v.source.as_deref() == Some(expected_source.as_str()) && v.read_only == ro => {}
            Some(v) => {
                return Verdict::fail(format!(
                    "{target}: compose mounts `{}`{}, expected `{entry}`",
                    v.source.as_deref().unwrap_or("(anonymous)"),
                    if v.read_only { " read-only" } else { "" }
                ))
            }
            None => {
                return Verdict::fail(format!(
                    "{target}: compose mounts nothing there (expected `{entry}`)"
                ))
            }
        }
        let live = mounts
            .iter()
            .find(|m| m.destination.as_deref() == Some(target));
        let Some(live) = live else {
            return Verdict::fail(format!("{target}: the container has no mount there"));
        };
        let live_source = if is_bind {
            live.source.clone().unwrap_or_default()
        } else {
            live.name.clone().unwrap_or_default()
        };
        let want_live = if is_bind {
            expected_source.clone()
        } else {
            ctx.model.volume_name(source)
        };
        if live_source != want_live {
            return Verdict::fail(format!(
                "{target}: the container mounts `{live_source}`, expected `{want_live}`"
            ));
        }
        if live.rw == Some(ro) {
            return Verdict::fail(format!(
                "{target}: mounted {}, expected {}",
                if ro { "read-write" } else { "read-only" },
                if ro { "read-only" } else { "read-write" }
            ));
        }
    }
    Verdict::pass("mounts as documented")
}
