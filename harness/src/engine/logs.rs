//! A container's whole log, streamed: `run --logs-dir` writes it to a file as it arrives, so a
//! gigabyte of output never sits in memory.

use std::time::Duration;

use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;

use super::{bounded, Engine, EngineError};

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
}
