//! Runtime network and mount promises, proven from inside the target: `isolated`, `reach`,
//! `networks.<n>.internal` and `read_only_mounts` / `writable_mounts`.
//!
//! A probe container (the harness's own image) joins the target's network namespace
//! (`--network container:<id>`) or gets its mounts (`--volumes-from`), so the target needs no shell.
//! Probes only ever connect to addresses this run created: the canary container on the stack's
//! networks, and listeners the harness opens on loopback and on the gateway of its own canary network.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

use super::{Ctx, Verdict};
use crate::engine::{probe_image, pulled_line, Engine, HelperSpec, DEFAULT_PROBE_IMAGE};
use crate::report::Progress;
use crate::suite::PullPolicy;
use crate::suite::{ReachCheck, Reachability};

pub(super) const PROBE_LIMIT: Duration = Duration::from_secs(60);
/// How long pulling the probe image may take (it is small; a registry that is slower is down).
const PROBE_PULL_LIMIT: Duration = Duration::from_secs(300);
pub(super) const CANARY_PORT: u16 = 7777;

/// The probe program (python3 in the probe image): `net TARGET...` reports interfaces, routes and
/// which `host:port` targets accept TCP; `write PATH...` tries one write per path; `udp` lists the
/// UDP ports bound in its network namespace; `listen PORT [ADDRESS]` is a canary (port 0: any free one,
/// said on stdout).
const PROBE_PY: &str = r#"
import json, os, socket, sys
def net(targets):
    dev = [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:] if ':' in l]
    routes = []
    for l in open('/proc/net/route').read().splitlines()[1:]:
        f = l.split()
        if len(f) > 2: routes.append({'iface': f[0], 'dest': f[1], 'default': f[1] == '00000000'})
    try:
        for l in open('/proc/net/ipv6_route').read().splitlines():
            f = l.split()
            if len(f) == 10 and f[9] != 'lo': routes.append({'iface': f[9], 'dest': f[0], 'default': f[0] == '0' * 32 and f[1] == '00'})
    except OSError:
        pass
    reached = {}
    for t in targets:
        host, port = t.rsplit(':', 1)
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
            reached[t] = 'open'
        except Exception as e:
            reached[t] = '%s: %s' % (type(e).__name__, e)
    print(json.dumps({'interfaces': dev, 'routes': routes, 'reached': reached}))
def write(paths):
    out = {}
    for p in paths:
        try:
            if os.path.isdir(p):
                f = os.path.join(p, '.stackcheck-write-probe')
                with open(f, 'w') as h: h.write('stackcheck')
                os.remove(f)
            else:
                # A file mount: opening it for writing is the write attempt; nothing is changed.
                open(p, 'a').close()
            out[p] = 'written'
        except OSError as e:
            out[p] = e.strerror or str(e)
    print(json.dumps(out))
def udp(_):
    ports = set()
    for f in ('/proc/net/udp', '/proc/net/udp6'):
        try:
            for l in open(f).read().splitlines()[1:]:
                ports.add(int(l.split()[1].rsplit(':', 1)[1], 16))
        except OSError:
            pass
    print(json.dumps(sorted(ports)))
def listen(port, host='0.0.0.0'):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port)); s.listen(64)
    print('listening on port %d' % s.getsockname()[1], flush=True)
    while True:
        c, _ = s.accept(); c.close()
{'net': net, 'write': write, 'udp': udp, 'listen': lambda a: listen(int(a[0]), *a[1:])}[sys.argv[1]](sys.argv[2:])
"#;

pub(super) fn probe_cmd(mode: &str, args: &[String]) -> Vec<String> {
    let mut cmd = vec![
        "python3".to_string(),
        "-c".into(),
        PROBE_PY.into(),
        mode.into(),
    ];
    cmd.extend(args.iter().cloned());
    cmd
}

#[derive(Debug, Deserialize)]
pub(super) struct NetReport {
    pub(super) interfaces: Vec<String>,
    routes: Vec<Route>,
    pub(super) reached: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Route {
    iface: String,
    default: bool,
}

/// Puts the probe image on the engine as the run's pull policy says: pulled (with the docker CLI's
/// credentials, like the stack's images) when absent or under `always`. The default image is in
/// no registry: absent, it is built, never pulled.
pub async fn obtain_probe_image(
    engine: &Engine,
    policy: PullPolicy,
    progress: &dyn Progress,
) -> Result<(), String> {
    let image = probe_image();
    let present = engine
        .image(image)
        .await
        .map_err(|e| e.to_string())?
        .is_some();
    // The default image is in no registry: absent, it is built, never pulled.
    if image == DEFAULT_PROBE_IMAGE || !policy.pulls(present) {
        return match present {
            true => Ok(()),
            false if image == DEFAULT_PROBE_IMAGE => Err(format!(
                "the probe image {image} is missing; build it with `bash ci/images.sh`, or set STACKCHECK_PROBE_IMAGE to an image with python3 that the engine has or can pull"
            )),
            false => Err(format!(
                "the probe image {image} (STACKCHECK_PROBE_IMAGE) is not on the engine and pull policy `never` forbids pulling it"
            )),
        };
    }
    let t0 = std::time::Instant::now();
    progress.phase(&format!("pulling {image} (probe image)"));
    match engine
        .pull(image, PROBE_PULL_LIMIT, |l| progress.detail(l))
        .await
    {
        Ok(digest) => {
            progress.phase(&pulled_line(image, t0.elapsed(), digest.as_deref()));
            Ok(())
        }
        Err(e) => Err(format!("the probe image (STACKCHECK_PROBE_IMAGE): {e}")),
    }
}

async fn run_probe(
    ctx: &Ctx<'_>,
    network_mode: String,
    volumes_from: Vec<String>,
    mode: &str,
    args: &[String],
) -> Result<String, Verdict> {
    ctx.probe_ready().await.map_err(Verdict::fail)?;
    if mode == "net" {
        for target in args {
            ctx.home(target).await?;
        }
    }
    let spec = HelperSpec {
        image: probe_image().into(),
        cmd: probe_cmd(mode, args),
        network_mode: Some(network_mode),
        volumes_from,
        labels: ctx.labels.clone(),
        ..Default::default()
    };
    let out = ctx
        .engine
        .run_helper(&spec, PROBE_LIMIT, &Default::default())
        .await
        .map_err(|e| Verdict::fail(format!("probe: {e}")))?;
    if out.exit != 0 {
        return Err(Verdict::fail(format!(
            "the probe failed (exit {}): {}",
            out.exit,
            crate::text::snippet(&out.stderr.text(), 300)
        )));
    }
    Ok(out.stdout.text())
}

/// The UDP ports something is bound to in a running container's network namespace. A published
/// UDP port proves nothing by itself (no handshake: the engine's proxy takes every datagram), so
/// the namespace's socket table is the proof that a listener is there.
pub async fn udp_bound(ctx: &Ctx<'_>, id: &str) -> Result<BTreeSet<u16>, Verdict> {
    let out = run_probe(ctx, format!("container:{id}"), Vec::new(), "udp", &[]).await?;
    serde_json::from_str(out.trim()).map_err(|e| {
        Verdict::fail(format!(
            "unreadable probe report ({e}): {}",
            crate::text::snippet(&out, 300)
        ))
    })
}

/// The namespace to probe: the running container's own, or (for a one-shot that has exited) a twin
/// namespace made with the same network mode — said so in the message.
async fn namespace_of(ctx: &Ctx<'_>, service: &str) -> Result<(String, Option<String>), Verdict> {
    let (id, info) = ctx.inspect(service).await?;
    if info.state.as_ref().and_then(|s| s.running) == Some(true) {
        return Ok((format!("container:{id}"), None));
    }
    let mode = info
        .host_config
        .and_then(|h| h.network_mode)
        .unwrap_or_else(|| "default".into());
    Ok((
        mode.clone(),
        Some(format!(
            "`{service}` has exited; probed a namespace with its network mode `{mode}`"
        )),
    ))
}

/// Tries before a crossing made while networks kept changing counts anyway.
const CROSSING_TRIES: usize = 5;

/// Whether `target` accepts TCP from a probe in `network_mode`, and in words how it went.
async fn reaches(
    ctx: &Ctx<'_>,
    network_mode: String,
    target: &str,
    confirm: bool,
) -> Result<(bool, String), Verdict> {
    judge_crossing(confirm, |look| {
        let mode = network_mode.clone();
        async move {
            let changes = look.then(|| ctx.engine.watch_network_changes());
            let out = run_probe(ctx, mode, vec![], "net", &[target.to_string()]).await?;
            let result = serde_json::from_str::<NetReport>(out.trim())
                .ok()
                .and_then(|r| r.reached.get(target).cloned())
                .unwrap_or_else(|| {
                    format!(
                        "unreadable probe report: {}",
                        crate::text::snippet(&out, 200)
                    )
                });
            let changed = match changes.filter(|_| result == "open") {
                Some(changes) => changes.finish().await,
                None => Vec::new(),
            };
            Ok((result, changed))
        }
    })
    .await
}

/// The verdict of probes `try_once(look)` makes (its answer, and when `look`, the networks the
/// engine changed meanwhile). Where a connection would fail the promise (`confirm`), it counts
/// only when no network was created or removed meanwhile (see `engine/events.rs`);
/// otherwise the probe is made again, and after [`CROSSING_TRIES`] such tries the connection
/// counts, since isolation was never shown.
async fn judge_crossing<F, Fut>(confirm: bool, mut try_once: F) -> Result<(bool, String), Verdict>
where
    F: FnMut(bool) -> Fut,
    Fut: std::future::Future<Output = Result<(String, Vec<String>), Verdict>>,
{
    let mut during = Vec::new();
    for _ in 0..CROSSING_TRIES {
        let (result, changed) = try_once(confirm).await?;
        let note = match during.len() {
            0 => String::new(),
            n => format!(
                " (after {n} connection(s) made while the engine changed networks: {})",
                during.join("; ")
            ),
        };
        if result != "open" {
            return Ok((false, format!("{result}{note}")));
        }
        if !confirm {
            return Ok((true, result));
        }
        if changed.is_empty() {
            return Ok((true, format!("connected{note}")));
        }
        during.push(changed.join(", "));
    }
    Ok((
        true,
        format!(
            "connected on each of {CROSSING_TRIES} tries, each while the engine changed networks: {}",
            during.join("; ")
        ),
    ))
}

pub async fn check_isolated(ctx: &Ctx<'_>, service: &str) -> Verdict {
    let canary = match ctx.canary().await {
        Ok(c) => c,
        Err(e) => return Verdict::fail(format!("cannot start the canaries: {e}")),
    };
    let (mode, note) = match namespace_of(ctx, service).await {
        Ok(x) => x,
        Err(v) => return v,
    };
    let targets = canary.targets();
    let addrs: Vec<String> = targets.iter().map(|(a, _)| a.clone()).collect();
    let out = match run_probe(ctx, mode, vec![], "net", &addrs).await {
        Ok(o) => o,
        Err(v) => return v,
    };
    let report: NetReport = match serde_json::from_str(out.trim()) {
        Ok(r) => r,
        Err(e) => {
            return Verdict::fail(format!(
                "unreadable probe report ({e}): {}",
                crate::text::snippet(&out, 300)
            ))
        }
    };
    let mut problems = Vec::new();
    let extra: Vec<&String> = report.interfaces.iter().filter(|i| *i != "lo").collect();
    if !extra.is_empty() {
        problems.push(format!("interfaces besides loopback: {extra:?}"));
    }
    let routes: Vec<String> = report
        .routes
        .iter()
        .filter(|r| r.iface != "lo")
        .map(|r| {
            format!(
                "{}{}",
                if r.default {
                    "default via "
                } else {
                    "route on "
                },
                r.iface
            )
        })
        .collect();
    if !routes.is_empty() {
        problems.push(format!("routes: {}", routes.join(", ")));
    }
    for (addr, what) in &targets {
        if report.reached.get(addr).map(String::as_str) == Some("open") {
            problems.push(format!("reached the {what} at {addr}"));
        }
    }
    let note = note.map(|n| format!(" ({n})")).unwrap_or_default();
    if problems.is_empty() {
        Verdict::pass(format!(
            "`{service}`: only loopback, no route, {} canaries unreachable{note}",
            targets.len()
        ))
    } else {
        Verdict::fail(format!(
            "`{service}` is not isolated: {}{note}",
            problems.join("; ")
        ))
    }
}

pub async fn check_reach(ctx: &Ctx<'_>, probe: &ReachCheck) -> Verdict {
    let Some((to, port)) = probe.target() else {
        return Verdict::fail(format!("invalid target `{}`", probe.to));
    };
    // An unreachable verdict only means something when the target is up.
    if let Err(v) = ctx.running(to).await {
        return Verdict::fail(format!(
            "cannot judge reachability of {}: {}",
            probe.to, v.message
        ));
    }
    let from = match ctx.running(&probe.from).await {
        Ok(id) => id,
        Err(v) => return v,
    };
    let target = format!("{to}:{port}");
    let (reached, result) = match reaches(
        ctx,
        format!("container:{from}"),
        &target,
        probe.expect == Reachability::Unreachable,
    )
    .await
    {
        Ok(r) => r,
        Err(v) => return v,
    };
    match (probe.expect, reached) {
        (Reachability::Reachable, true) => {
            Verdict::pass(format!("{} → {target}: connected", probe.from))
        }
        (Reachability::Unreachable, false) => {
            Verdict::pass(format!("{} → {target}: unreachable ({result})", probe.from))
        }
        (Reachability::Reachable, false) => Verdict::fail(format!(
            "expected {} to reach {target}, the connection failed: {result}",
            probe.from
        )),
        (Reachability::Unreachable, true) => Verdict::fail(format!(
            "expected {target} to be unreachable from {}, but a TCP connection succeeded ({result})",
            probe.from
        )),
    }
}

/// `internal: true|false` at runtime: a probe on only that network tries to leave it for the
/// harness's listener outside every stack network.
pub async fn check_egress(ctx: &Ctx<'_>, engine_network: &str, internal: bool) -> Verdict {
    let canary = match ctx.canary().await {
        Ok(c) => c,
        Err(e) => return Verdict::fail(format!("cannot start the canaries: {e}")),
    };
    let gw = canary.egress.clone();
    let (left, result) = match reaches(ctx, engine_network.to_string(), &gw, internal).await {
        Ok(r) => r,
        Err(v) => return v,
    };
    match (internal, left) {
        (true, false) => Verdict::pass(format!("internal: a container on `{engine_network}` cannot leave it ({result})")),
        (false, true) => Verdict::pass(format!("not internal: a container on `{engine_network}` reached {gw} outside it")),
        (true, true) => Verdict::fail(format!(
            "expected `{engine_network}` to be internal, but a container on it reached the harness's canary {gw} outside the network ({result})"
        )),
        (false, false) => Verdict::fail(format!("expected `{engine_network}` to allow egress, the canary {gw} was unreachable: {result}")),
    }
}

/// Writes into each path through the service's own mounts; `want_writable` says which outcome holds.
pub async fn check_mount_writes(
    ctx: &Ctx<'_>,
    service: &str,
    paths: &[String],
    want_writable: bool,
) -> Verdict {
    let (id, info) = match ctx.inspect(service).await {
        Ok(x) => x,
        Err(v) => return v,
    };
    let mounts: Vec<String> = info
        .mounts
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.destination)
        .collect();
    let not_mounts: Vec<&String> = paths.iter().filter(|p| !mounts.contains(p)).collect();
    if !not_mounts.is_empty() {
        return Verdict::fail(format!(
            "{not_mounts:?} are not mounts of `{service}` (its mounts: {mounts:?})"
        ));
    }
    let out = match run_probe(ctx, "none".into(), vec![id.clone()], "write", paths).await {
        Ok(o) => o,
        Err(v) => return v,
    };
    let results: BTreeMap<String, String> = match serde_json::from_str(out.trim()) {
        Ok(r) => r,
        Err(e) => {
            return Verdict::fail(format!(
                "unreadable probe report ({e}): {}",
                crate::text::snippet(&out, 300)
            ))
        }
    };
    let wrong: Vec<String> = results
        .iter()
        .filter(|(_, r)| (r.as_str() == "written") != want_writable)
        .map(|(p, r)| {
            if want_writable {
                format!("{p}: write failed ({r})")
            } else {
                format!("{p}: a write succeeded")
            }
        })
        .collect();
    if wrong.is_empty() {
        let how = if want_writable {
            "accepts a write"
        } else {
            "refuses writes"
        };
        let seen: Vec<String> = results.iter().map(|(p, r)| format!("{p} ({r})")).collect();
        Verdict::pass(format!("each path {how}: {}", seen.join(", ")))
    } else if want_writable {
        Verdict::fail(format!(
            "expected writable mounts in `{service}`: {}",
            wrong.join("; ")
        ))
    } else {
        Verdict::fail(format!(
            "expected read-only mounts in `{service}`: {}",
            wrong.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the judgement over answers given in order (a probe's result, the changes it saw).
    fn judged(confirm: bool, answers: &[(&str, &[&str])]) -> (bool, String, usize) {
        let mut left = answers.iter();
        let mut made = 0;
        let verdict = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(judge_crossing(confirm, |_| {
                made += 1;
                let (r, c) = left.next().expect("no more probes expected");
                let answer = (r.to_string(), c.iter().map(|c| c.to_string()).collect());
                async move { Ok(answer) }
            }));
        let (reached, said) = verdict.unwrap();
        (reached, said, made)
    }

    #[test]
    fn a_crossing_while_the_engine_changed_networks_is_tried_again() {
        let (reached, said, made) = judged(
            true,
            &[
                ("open", &["create other_net"]),
                ("TimeoutError: timed out", &[]),
            ],
        );
        assert!(!reached);
        assert_eq!(made, 2);
        assert_eq!(
            said,
            "TimeoutError: timed out (after 1 connection(s) made while the engine changed networks: create other_net)"
        );
    }

    #[test]
    fn a_crossing_while_nothing_changed_is_a_leak_at_once() {
        let (reached, said, made) = judged(true, &[("open", &[])]);
        assert!(reached);
        assert_eq!((said.as_str(), made), ("connected", 1));
    }

    #[test]
    fn crossings_that_always_coincide_with_changes_count_in_the_end() {
        let answers = [("open", &["destroy n"][..]); CROSSING_TRIES];
        let (reached, said, made) = judged(true, &answers);
        assert!(reached, "isolation was never shown");
        assert_eq!(made, CROSSING_TRIES);
        assert!(said.starts_with("connected on each of 5 tries"), "{said}");
    }

    #[test]
    fn a_connection_the_promise_wants_is_taken_at_once() {
        let (reached, _, made) = judged(false, &[("open", &["create n"])]);
        assert!(reached);
        assert_eq!(made, 1);
    }
}
