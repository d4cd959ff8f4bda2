//! The stack's topology: the compose model defines what the suite names (`stack::config`), its
//! networks and named volumes.

use super::{Ctx, Verdict};
use crate::engine::ComposeModel;
use crate::suite::{NetworkSpec, Suite};

pub async fn check_network(ctx: &Ctx<'_>, name: &str, spec: &NetworkSpec) -> Verdict {
    let Some(model) = ctx.model.networks.get(name) else {
        let known: Vec<&str> = ctx.model.networks.keys().map(String::as_str).collect();
        return Verdict::fail(format!(
            "network `{name}` is not defined in the compose files (networks: {})",
            known.join(", ")
        ));
    };
    let configs: Vec<_> = model.ipam.iter().flat_map(|i| &i.config).collect();
    // Under ephemeral ports the run may have moved the subnet (`plan::subnets`): the documented
    // one is proven from the compose files, the moved one on the engine.
    let declared_subnets: Vec<String> = configs
        .iter()
        .filter_map(|c| c.documented.clone().or(c.subnet.clone()))
        .collect();
    let on_engine = |want: &String| -> String {
        configs
            .iter()
            .find(|c| c.documented.as_ref() == Some(want))
            .and_then(|c| c.subnet.clone())
            .unwrap_or_else(|| want.clone())
    };
    if let Some(want) = &spec.subnet {
        if !declared_subnets.contains(want) {
            return Verdict::fail(format!(
                "expected subnet {want}, compose declares {declared_subnets:?}"
            ));
        }
    }
    let engine_name = ctx.model.network_name(name);
    let live = match ctx.engine.network(&engine_name).await {
        Ok(Some(n)) => n,
        Ok(None) => {
            return Verdict::fail(format!(
                "network `{engine_name}` does not exist on the engine"
            ))
        }
        Err(e) => return Verdict::fail(e.to_string()),
    };
    let driver = live.driver.clone().unwrap_or_default();
    if let Some(want) = &spec.driver {
        if &driver != want {
            return Verdict::fail(format!(
                "expected driver `{want}`, `{engine_name}` uses `{driver}`"
            ));
        }
    }
    let subnets: Vec<String> = live
        .ipam
        .and_then(|i| i.config)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.subnet)
        .collect();
    if let Some(want) = &spec.subnet {
        let live_want = on_engine(want);
        if !subnets.contains(&live_want) {
            let moved = if &live_want == want {
                String::new()
            } else {
                format!(" (this run moved it to {live_want}: ports: ephemeral)")
            };
            return Verdict::fail(format!(
                "expected subnet {want}{moved}, `{engine_name}` has {subnets:?}"
            ));
        }
    }
    let moved: Vec<String> = configs
        .iter()
        .filter_map(|c| {
            Some(format!(
                "{} as {}",
                c.documented.as_ref()?,
                c.subnet.as_ref()?
            ))
        })
        .collect();
    let subnets = if moved.is_empty() {
        format!("{subnets:?}")
    } else {
        format!(
            "{subnets:?} (documented {}, moved for this run)",
            moved.join(", ")
        )
    };
    if let Some(want) = spec.internal {
        // Proven at runtime: a container on the network tries to leave it.
        let egress = super::net::check_egress(ctx, &engine_name, want).await;
        if !egress.passed {
            return egress;
        }
        return Verdict::pass(format!(
            "`{engine_name}`: driver {driver}, subnets {subnets}; {}",
            egress.message
        ));
    }
    Verdict::pass(format!(
        "`{engine_name}`: driver {driver}, subnets {subnets}"
    ))
}

pub async fn check_volume(ctx: &Ctx<'_>, name: &str) -> Verdict {
    if !ctx.model.volumes.contains_key(name) {
        let known: Vec<&str> = ctx.model.volumes.keys().map(String::as_str).collect();
        return Verdict::fail(format!(
            "volume `{name}` is not defined in the compose files (volumes: {})",
            known.join(", ")
        ));
    }
    let engine_name = ctx.model.volume_name(name);
    match ctx.engine.volume_exists(&engine_name).await {
        Ok(true) => Verdict::pass(format!("`{engine_name}` exists")),
        Ok(false) => Verdict::fail(format!("volume `{engine_name}` was not created")),
        Err(e) => Verdict::fail(e.to_string()),
    }
}

/// `stack::config`: every service the suite names is defined by the stack (`source` says by what).
pub fn check_config(suite: &Suite, model: &ComposeModel, source: &str) -> Verdict {
    let named = suite.named_services();
    let missing: Vec<&String> = named
        .iter()
        .filter(|s| !model.services.contains_key(*s))
        .collect();
    if missing.is_empty() {
        Verdict::pass(format!(
            "{} services, {} networks, {} volumes",
            model.services.len(),
            model.networks.len(),
            model.volumes.len()
        ))
    } else {
        let known: Vec<&String> = model.services.keys().collect();
        Verdict::fail(format!("services named by the suite but not defined by {source}: {missing:?} (defined: {known:?})"))
    }
}
