//! Smoke checks: tcp, exec, from_host and files, each judged against its `expect` (http has its
//! own module).
//!
//! Traffic only goes to loopback (a published port) or to the address of a container this run
//! created — never anywhere else.

use std::time::{Duration, Instant};

use super::expect;
use super::listen::{listen, not_listening};
use super::{Ctx, Verdict};
use crate::engine::{ComposeModel, ExecOutput, HelperSpec};
use crate::suite::{ExecCheck, Expect, FromHostCheck, TcpCheck};
use crate::text::{snippet, tail_snippet};

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const FROM_HOST_LIMIT: Duration = Duration::from_secs(60);
const EXEC_LIMIT: Duration = Duration::from_secs(60);

/// A TCP connection to a service's port is accepted.
pub(super) async fn tcp(ctx: &Ctx<'_>, p: &TcpCheck) -> Verdict {
    let addr = match target(ctx, &p.service, p.port).await {
        Ok(addr) => addr,
        Err(v) => return v,
    };
    let seen = listen(&addr, ATTEMPT_TIMEOUT).await;
    match not_listening(&seen, p.port, &addr, ATTEMPT_TIMEOUT) {
        None => Verdict::pass(format!("{}:{} accepts TCP (via {addr})", p.service, p.port)),
        Some(why) => Verdict::fail(format!("`{}`: {why}", p.service)),
    }
}

/// A command run inside a service's running container.
pub(super) async fn exec(ctx: &Ctx<'_>, p: &ExecCheck, expect: &Expect) -> Verdict {
    let id = match ctx.running(&p.service).await {
        Ok(id) => id,
        Err(v) => return v,
    };
    let t0 = Instant::now();
    match ctx
        .engine
        .exec(
            &id,
            &p.cmd,
            p.user.as_deref(),
            expect::attempt_bound(EXEC_LIMIT, expect),
            &expect::watching(expect),
        )
        .await
    {
        Ok(out) => expect_exec(expect, &out, t0.elapsed()),
        Err(e) => Verdict::fail(e.to_string()),
    }
}

/// Files the stack must have written on the host exist.
pub(super) fn files(ctx: &Ctx<'_>, paths: &[String]) -> Verdict {
    let missing: Vec<&String> = paths
        .iter()
        .filter(|p| !ctx.host_path(p).exists())
        .collect();
    if missing.is_empty() {
        Verdict::pass(format!("{} files exist", paths.len()))
    } else {
        Verdict::fail(format!(
            "missing: {missing:?} (relative to {})",
            ctx.loaded.dir.display()
        ))
    }
}

/// Runs the command in a throwaway, labelled container on the host's network with the image the
/// service's container runs (the image ID, so a rebuilt tag cannot change what is tested).
pub(super) async fn from_host(ctx: &Ctx<'_>, p: &FromHostCheck, expect: &Expect) -> Verdict {
    // With ephemeral ports the stack is not on its documented host ports: a command that names
    // one would reach whatever else listens there (another run of the same stack, say) and
    // could pass on it.
    if ctx.ephemeral_ports {
        let documented = ctx.model.services.values().flat_map(|s| &s.ports);
        let documented = documented.filter_map(|p| p.published.as_deref()?.parse::<u16>().ok());
        if let Some(port) = names_host_port(&p.cmd, &documented.collect::<Vec<_>>()) {
            return Verdict::fail(format!(
                "the command names host port {port}, which this run does not publish (ports: \
                 ephemeral): it would reach whatever else listens there, not this stack; run \
                 with `--ports documented`"
            ));
        }
    }
    let (_, info) = match ctx.inspect(&p.image_of).await {
        Ok(x) => x,
        Err(v) => return v,
    };
    let Some(image) = info.image else {
        return Verdict::fail(format!("`{}` has no image in its inspect", p.image_of));
    };
    let spec = HelperSpec {
        image,
        cmd: p.cmd.clone(),
        network_mode: Some("host".into()),
        labels: ctx.labels.clone(),
        ..Default::default()
    };
    let t0 = Instant::now();
    let watching = expect::watching(expect);
    match ctx
        .engine
        .run_helper(
            &spec,
            expect::attempt_bound(FROM_HOST_LIMIT, expect),
            &watching,
        )
        .await
    {
        Ok(out) => expect_exec(expect, &out, t0.elapsed()),
        Err(e) => Verdict::fail(format!("from the host with `{}`'s image: {e}", p.image_of)),
    }
}

/// The first `from_host` command of the suite (check or step) naming a documented host port,
/// as `(check name, port)`: such a suite cannot run with ephemeral ports (see [`from_host`]).
pub fn names_a_documented_port(
    suite: &crate::suite::Suite,
    model: &ComposeModel,
) -> Option<(String, u16)> {
    let documented: Vec<u16> = model
        .services
        .values()
        .flat_map(|s| &s.ports)
        .filter_map(|p| p.published.as_deref()?.parse::<u16>().ok())
        .collect();
    suite.checks.iter().find_map(|c| {
        c.kind
            .with_steps()
            .into_iter()
            .find_map(|(_, kind)| match kind {
                crate::suite::CheckKind::FromHost(p) => {
                    names_host_port(&p.cmd, &documented).map(|port| (c.name.clone(), port))
                }
                _ => None,
            })
    })
}

/// The first of `ports` that `cmd` names: as a whole number anywhere (`:18081`, `nc host 18081`,
/// `-p5432`), since a port can be given as its own word; not a digit run inside a longer number or
/// a dotted one (`180810`, `10.0.0.80`). A number that only looks like the port (`sleep 18081`)
/// counts too: a refused check says why, a missed one passes on someone else's listener.
fn names_host_port(cmd: &[String], ports: &[u16]) -> Option<u16> {
    let bound = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_digit() || c == '.');
    ports.iter().copied().find(|port| {
        let needle = port.to_string();
        cmd.iter().any(|arg| {
            arg.match_indices(&needle).any(|(at, _)| {
                bound(arg[..at].chars().next_back())
                    && bound(arg[at + needle.len()..].chars().next())
            })
        })
    })
}

/// Where to reach a service's container port: its published loopback port, else the container's
/// own address on one of its networks.
pub(super) async fn target(ctx: &Ctx<'_>, service: &str, port: u16) -> Result<String, Verdict> {
    let id = ctx.running(service).await?;
    let info = ctx
        .engine
        .inspect(&id)
        .await
        .map_err(|e| Verdict::fail(e.to_string()))?;
    let published = crate::engine::published_host_port(&info, port);
    let settings = info.network_settings.unwrap_or_default();
    let addr = match published {
        Some(host_port) => ctx.engine.published_addr(&host_port),
        None if ctx.engine.remote_host().is_some() => {
            return Err(Verdict::fail(format!(
                "`{service}` port {port} is not published, and container addresses of a remote engine (DOCKER_HOST) cannot be reached from here"
            )))
        }
        None => settings
            .networks
            .unwrap_or_default()
            .into_values()
            .find_map(|n| n.ip_address.filter(|ip| !ip.is_empty()))
            .map(|ip| format!("{ip}:{port}"))
            .ok_or_else(|| {
                Verdict::fail(format!(
                    "`{service}` port {port} is neither published nor reachable on a network"
                ))
            })?,
    };
    ctx.home(&addr).await?;
    Ok(addr)
}

fn expect_exec(expect: &Expect, out: &ExecOutput, took: Duration) -> Verdict {
    let exit = out.exit;
    let want_exit = expect.exit.unwrap_or(0);
    let (stdout, stderr) = (out.stdout.text(), out.stderr.text());
    if exit != want_exit {
        let said = if stdout.trim().is_empty() {
            String::new()
        } else {
            format!("; stdout: {}", tail_snippet(&stdout, 200))
        };
        return Verdict::fail(format!(
            "exit code {exit}, expected {want_exit}{said}; stderr: {}",
            tail_snippet(&stderr, 300)
        ))
        .with_detail(format!(
            "--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        ));
    }
    let judged = [
        expect::within("the command", expect.within.map(|d| d.0), took),
        expect::output_ok(expect, &out.stdout, &out.stderr),
    ];
    match judged.into_iter().find_map(Result::err) {
        Some(why) => Verdict::fail(why),
        None => Verdict::pass(format!("exit {exit}; stdout: {}", snippet(&stdout, 80))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(exit: i64, stdout: &str, stderr: &str, expect: &Expect) -> ExecOutput {
        let w = expect::watching(expect);
        ExecOutput {
            exit,
            stdout: crate::engine::Captured::of(stdout, &w.stdout),
            stderr: crate::engine::Captured::of(stderr, &w.stderr),
        }
    }

    #[test]
    fn exec_expectations() {
        let e = Expect {
            stdout: Some("/^PONG$/".into()),
            ..Default::default()
        };
        let t = Duration::from_millis(5);
        assert!(expect_exec(&e, &output(0, "PONG\n", "", &e), t).passed);
        assert!(!expect_exec(&e, &output(0, "NO\n", "", &e), t).passed);
        assert!(!expect_exec(&e, &output(1, "PONG\n", "boom", &e), t).passed);
        let e = Expect {
            stderr_excludes: Some("/WARN/".into()),
            within: Some(crate::suite::Dur(Duration::from_millis(100))),
            ..Default::default()
        };
        assert!(expect_exec(&e, &output(0, "", "ok", &e), t).passed);
        let v = expect_exec(&e, &output(0, "", "a\nWARN x\n", &e), t);
        assert!(v.message.contains("line 2 does: WARN x"), "{}", v.message);
        let v = expect_exec(&e, &output(0, "", "", &e), Duration::from_secs(1));
        assert!(v.message.contains("took 1.00s"), "{}", v.message);
    }

    #[test]
    fn a_documented_host_port_is_named_as_a_whole_number_anywhere() {
        let cmd = |s: &str| vec!["python3".to_string(), "-c".into(), s.to_string()];
        let url = cmd("u.urlopen('http://localhost:18081/', timeout=5)");
        assert_eq!(names_host_port(&url, &[5432, 18081]), Some(18081));
        assert_eq!(
            names_host_port(&cmd("nc 127.0.0.1:18081"), &[18081]),
            Some(18081)
        );
        assert_eq!(
            names_host_port(&cmd("http://localhost:180810/"), &[18081]),
            None
        );
        // As its own word, the way `nc`, `pg_isready -p` and `redis-cli -p` take it.
        for c in [
            "nc localhost 18081",
            "pg_isready -h localhost -p5432",
            "x --port=5432",
        ] {
            assert!(names_host_port(&cmd(c), &[5432, 18081]).is_some(), "{c}");
        }
        assert_eq!(names_host_port(&cmd("ping -c1 10.0.0.80"), &[80]), None);
        assert_eq!(names_host_port(&cmd("python3.11 -V"), &[11]), None);
    }

    #[test]
    fn a_suite_whose_host_command_names_a_documented_port_is_found_statically() {
        let model = ComposeModel::parse(
            r#"{"services":{"web":{"ports":[{"target":80,"published":"18081"}]}}}"#,
        )
        .unwrap();
        let suite = |check: &str| {
            let text = format!("suite: s\nstack: {{ compose: [c.yml] }}\nchecks:\n{check}");
            crate::suite::load_str(std::path::Path::new("s.yaml"), &text)
                .unwrap()
                .suite
        };
        let named = suite(
            "  - name: host\n    from_host: { image_of: web, cmd: [curl, 'localhost:18081'] }\n",
        );
        assert_eq!(
            names_a_documented_port(&named, &model),
            Some(("host".to_string(), 18081))
        );
        let stepped = suite("  - name: steps\n    steps:\n      - from_host: { image_of: web, cmd: [nc, localhost, '18081'] }\n");
        assert!(names_a_documented_port(&stepped, &model).is_some());
        let other =
            suite("  - name: host\n    from_host: { image_of: web, cmd: [curl, 'localhost:9'] }\n");
        assert_eq!(names_a_documented_port(&other, &model), None);
    }
}
