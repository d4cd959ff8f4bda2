//! A container's log, streamed: `run --logs-dir` writes it to a file as it arrives, and `logs`
//! checks follow or scan it line by line, so a gigabyte of output never sits in memory.

use std::time::Duration;

use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;

use super::{bounded, Captured, Engine, EngineError, Lines};

impl Engine {
    /// Streams every line container `id` has logged so far (stdout and stderr, in the engine's
    /// order, each with its RFC 3339 timestamp) into `sink`, at most `limit`.
    pub async fn stream_log(
        &self,
        id: &str,
        limit: Duration,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), EngineError> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .build();
        let mut stream = self.docker.logs(id, Some(opts));
        let read = async {
            while let Some(chunk) = stream.next().await {
                sink(&chunk?.into_bytes());
            }
            Ok::<_, bollard::errors::Error>(())
        };
        bounded(format!("reading the log of {id}"), limit, read).await
    }

    /// Follows a container's log from its start until a line satisfies `matches` or `within` ends.
    /// Returns the matching line, or the last lines seen.
    pub async fn wait_for_log(
        &self,
        id: &str,
        within: Duration,
        matches: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Result<String, String> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(true)
            .build();
        let mut stream = self.docker.logs(id, Some(opts));
        super::output::read_on_worker(async move {
            let mut seen: std::collections::VecDeque<String> = std::collections::VecDeque::new();
            let mut lines = Lines::for_matching();
            let scan = async {
                while let Some(chunk) = stream.next().await {
                    let Ok(chunk) = chunk else { break };
                    for line in lines.feed(&chunk.into_bytes()) {
                        if matches(&line) {
                            return Some(line);
                        }
                        if seen.len() == 20 {
                            seen.pop_front();
                        }
                        // Cut when shown, not per line: most of a long log is never shown.
                        seen.push_back(if line.len() > 1200 {
                            crate::text::snippet(&line, 300)
                        } else {
                            line
                        });
                    }
                }
                lines.rest().filter(|l| matches(l))
            };
            match tokio::time::timeout(within, scan).await {
                Ok(Some(line)) => Ok(line),
                _ => Err(seen
                    .iter()
                    .map(|l| crate::text::snippet(l, 300))
                    .collect::<Vec<_>>()
                    .join("\n")),
            }
        })
        .await
    }

    /// A container's whole log so far (stdout and stderr) read as a stream through `watching`,
    /// so a long log is never held whole.
    pub async fn scan_log(
        &self,
        id: &str,
        limit: Duration,
        watching: &[crate::suite::Pattern],
    ) -> Result<Captured, EngineError> {
        let opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let mut stream = self.docker.logs(id, Some(opts));
        let mut out = Captured::watching(watching);
        let scan = super::output::read_on_worker(async move {
            while let Some(chunk) = stream.next().await {
                out.push(&chunk?.into_bytes());
            }
            out.finish();
            Ok::<_, bollard::errors::Error>(out)
        });
        bounded(format!("reading the log of {id}"), limit, scan).await
    }
}
