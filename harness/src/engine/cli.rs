//! Running an engine CLI (`docker compose`, `docker build`) with bounded time, streamed lines, a
//! kept tail for failure reports, and stdout kept within bounds (engine/output.rs).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::{Captured, Lines};

const TAIL_LINES: usize = 40;

pub(crate) enum CliError {
    Spawn(String),
    Failed {
        code: i32,
        tail: String,
        stdout: Captured,
    },
    Timeout {
        tail: String,
    },
}

/// Runs `cmd` (stdout and stderr piped, killed on drop), feeding every line to `on_line` (cut to
/// what a person reads) and stdout into `stdout` (bounded unless made whole). Returns stdout on
/// success.
pub(crate) async fn stream(
    mut cmd: Command,
    limit: Duration,
    mut on_line: impl FnMut(&str),
    mut stdout: Captured,
) -> Result<Captured, CliError> {
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
    let (Some(mut out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(CliError::Spawn("no output pipes".into()));
    };
    let (mut out_lines, mut err_lines) = (Lines::for_display(), Lines::for_display());
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut seen = |line: String, tail: &mut VecDeque<String>| {
        on_line(&line);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    };
    let (mut out_buf, mut err_buf) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    let work = async {
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            tokio::select! {
                n = out.read(&mut out_buf), if out_open => match n {
                    Ok(n) if n > 0 => {
                        stdout.push(&out_buf[..n]);
                        for l in out_lines.feed(&out_buf[..n]) { seen(l, &mut tail); }
                    }
                    _ => {
                        out_open = false;
                        if let Some(l) = out_lines.rest() { seen(l, &mut tail); }
                    }
                },
                n = err.read(&mut err_buf), if err_open => match n {
                    Ok(n) if n > 0 => {
                        for l in err_lines.feed(&err_buf[..n]) { seen(l, &mut tail); }
                    }
                    _ => {
                        err_open = false;
                        if let Some(l) = err_lines.rest() { seen(l, &mut tail); }
                    }
                },
            }
        }
        child.wait().await
    };
    let status = tokio::time::timeout(limit, work).await;
    stdout.finish();
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
