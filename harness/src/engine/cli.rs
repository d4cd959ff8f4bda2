//! Running an engine CLI (`docker compose`, `docker build`) with bounded time, streamed lines and a
//! kept tail for failure reports.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const TAIL_LINES: usize = 40;

pub(crate) enum CliError {
    Spawn(String),
    Failed {
        code: i32,
        tail: String,
        stdout: String,
    },
    Timeout {
        tail: String,
    },
}

/// Runs `cmd` (stdout and stderr piped, killed on drop), feeding every line to `on_line`.
/// Returns stdout on success.
pub(crate) async fn stream(
    mut cmd: Command,
    limit: Duration,
    mut on_line: impl FnMut(&str),
) -> Result<String, CliError> {
    // `kill_on_drop` needs the harness alive; if it is killed (SIGKILL), a `compose up` would go
    // on creating containers after the watcher swept. The kernel kills the child with us instead.
    // SAFETY: only an async-signal-safe prctl between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().map_err(|e| CliError::Spawn(e.to_string()))?;
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(CliError::Spawn("no output pipes".into()));
    };
    let mut out = BufReader::new(out).lines();
    let mut err = BufReader::new(err).lines();
    let mut stdout = String::new();
    let mut tail: VecDeque<String> = VecDeque::new();
    let push = |line: String, tail: &mut VecDeque<String>| {
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    };
    let work = async {
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            tokio::select! {
                l = out.next_line(), if out_open => match l {
                    Ok(Some(l)) => { on_line(&l); stdout.push_str(&l); stdout.push('\n'); push(l, &mut tail); }
                    _ => out_open = false,
                },
                l = err.next_line(), if err_open => match l {
                    Ok(Some(l)) => { on_line(&l); push(l, &mut tail); }
                    _ => err_open = false,
                },
            }
        }
        child.wait().await
    };
    let status = tokio::time::timeout(limit, work).await;
    let tail_text = || tail.iter().cloned().collect::<Vec<_>>().join("\n");
    match status {
        Err(_) => Err(CliError::Timeout { tail: tail_text() }),
        Ok(Err(e)) => Err(CliError::Spawn(e.to_string())),
        Ok(Ok(s)) if s.success() => Ok(stdout),
        Ok(Ok(s)) => Err(CliError::Failed {
            code: s.code().unwrap_or(-1),
            tail: tail_text(),
            stdout,
        }),
    }
}
