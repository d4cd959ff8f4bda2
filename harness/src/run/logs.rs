//! `run --logs-dir DIR`: every service's whole log, masked, in `DIR/<suite>/<service>.log`, written
//! before teardown whatever ended the run (pass, failure, Ctrl-C); the last lines of each are kept
//! so a failing test's JUnit `<system-out>` shows the logs of the services it touches.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engine::{Engine, LABEL_SERVICE};
use crate::mask::Masker;
use crate::plan::{self, PlannedTest};
use crate::report::{Outcome, Status};
use crate::suite::Suite;

/// How long one container's log may take to read (a gigabyte takes about a minute here).
const READ_LIMIT: Duration = Duration::from_secs(180);
/// Lines of each service's log a failing test shows.
const TAIL_LINES: usize = 40;
/// A tail line is cut here: one endless line must not fill a JUnit file.
const TAIL_LINE_BYTES: usize = 2048;

/// What `--logs-dir` wrote for one suite.
#[derive(Debug, Default)]
pub(crate) struct WrittenLogs {
    /// The files, one per service.
    pub files: Vec<PathBuf>,
    /// The last lines of each service's log, masked.
    pub tails: BTreeMap<String, String>,
    /// What could not be read or written, in words.
    pub problems: Vec<String>,
}

/// The containers of each service of compose project `project`, by name.
pub(super) async fn project_services(
    engine: &Engine,
    project: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in engine.project_containers(project).await.unwrap_or_default() {
        let labels = c.labels.unwrap_or_default();
        let (Some(service), Some(name)) = (
            labels.get(LABEL_SERVICE),
            c.names.and_then(|n| n.first().cloned()),
        ) else {
            continue;
        };
        out.entry(service.clone())
            .or_default()
            .push(name.trim_start_matches('/').to_string());
    }
    for names in out.values_mut() {
        names.sort();
    }
    out
}

/// Writes each service's log (`services`: service → its containers) under `dir/<suite>/`.
pub(super) async fn write(
    engine: &Engine,
    dir: &Path,
    suite: &str,
    services: &BTreeMap<String, Vec<String>>,
    masker: &Masker,
) -> WrittenLogs {
    let mut out = WrittenLogs::default();
    let folder = dir.join(suite);
    if let Err(e) = std::fs::create_dir_all(&folder) {
        out.problems
            .push(format!("cannot create {}: {e}", folder.display()));
        return out;
    }
    for (service, containers) in services {
        let path = folder.join(format!("{service}.log"));
        let file = match std::fs::File::create(&path) {
            Ok(f) => f,
            Err(e) => {
                out.problems
                    .push(format!("cannot write {}: {e}", path.display()));
                continue;
            }
        };
        let mut lines = MaskedLines::new(std::io::BufWriter::new(file), masker);
        for c in containers {
            // Replicas share the file, each under its name.
            if containers.len() > 1 {
                lines.header(&format!("==> container {c} <=="));
            }
            if let Err(e) = engine.stream_log(c, READ_LIMIT, |b| lines.push(b)).await {
                lines.header(&format!("[stackcheck: the log of {c} is incomplete: {e}]"));
            }
            lines.end_of_container();
        }
        match lines.finish() {
            Ok(tail) => {
                out.tails.insert(service.clone(), tail);
                out.files.push(path);
            }
            Err(e) => out
                .problems
                .push(format!("cannot write {}: {e}", path.display())),
        }
    }
    out
}

/// Lines to a file, each masked once it is whole; the last [`TAIL_LINES`] kept.
struct MaskedLines<'m, W: Write> {
    file: W,
    masker: &'m Masker,
    partial: Vec<u8>,
    tail: VecDeque<String>,
    error: Option<std::io::Error>,
}

impl<'m, W: Write> MaskedLines<'m, W> {
    fn new(file: W, masker: &'m Masker) -> Self {
        MaskedLines {
            file,
            masker,
            partial: Vec::new(),
            tail: VecDeque::new(),
            error: None,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.partial.extend_from_slice(bytes);
        while let Some(end) = memchr::memchr(b'\n', &self.partial) {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.line(&line[..line.len() - 1]);
        }
    }

    fn header(&mut self, text: &str) {
        self.end_of_container();
        self.line(text.as_bytes());
    }

    /// A container's last line need not end in a newline; the next one starts on its own.
    fn end_of_container(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line);
        }
    }

    fn line(&mut self, raw: &[u8]) {
        let masked = self.masker.mask(&String::from_utf8_lossy(raw));
        if self.error.is_none() {
            if let Err(e) = writeln!(self.file, "{masked}") {
                self.error = Some(e);
            }
        }
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        let cut = masked.floor_char_boundary(TAIL_LINE_BYTES);
        self.tail.push_back(masked[..cut].to_string());
    }

    fn finish(mut self) -> std::io::Result<String> {
        self.end_of_container();
        if let Some(e) = self.error {
            return Err(e);
        }
        self.file.flush()?;
        Ok(Vec::from(self.tail).join("\n"))
    }
}

/// Puts the tails of the services each failed test touches into its `logs`.
pub(super) fn attach(
    outcomes: &mut [Outcome],
    tests: &[PlannedTest],
    suite: &Suite,
    written: &WrittenLogs,
) {
    for o in outcomes.iter_mut().filter(|o| o.status == Status::Failed) {
        let Some(test) = tests.iter().find(|t| t.name == o.name) else {
            continue;
        };
        let touched: Vec<&String> = match plan::needs(suite, std::slice::from_ref(test)).services {
            Some(named) => written
                .tails
                .keys()
                .filter(|s| named.contains(*s))
                .collect(),
            None => written.tails.keys().collect(),
        };
        o.logs = touched
            .into_iter()
            .map(|s| format!("--- last lines of `{s}` ---\n{}", written.tails[s]))
            .collect::<Vec<_>>()
            .join("\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_masked_whole_even_when_a_secret_spans_chunks() {
        let masker = Masker::new([crate::mask::Secret::named("PW", "hunter2-secret")]);
        let mut file = Vec::new();
        let mut lines = MaskedLines::new(&mut file, &masker);
        lines.push(b"2026-01-01T00:00:00Z token=hunter2-");
        lines.push(b"secret ok\nsecond");
        let tail = lines.finish().unwrap();
        let text = String::from_utf8(file).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.ends_with("second\n"), "{text}");
        assert_eq!(tail.lines().last(), Some("second"));
    }

    #[test]
    fn the_tail_keeps_the_last_lines_each_cut_to_a_bound() {
        let masker = Masker::default();
        let mut lines = MaskedLines::new(std::io::sink(), &masker);
        for i in 0..100 {
            lines.push(format!("line {i}\n").as_bytes());
        }
        lines.push(&vec![b'x'; 10_000]);
        let tail = lines.finish().unwrap();
        assert_eq!(tail.lines().count(), TAIL_LINES);
        assert_eq!(tail.lines().next(), Some("line 61"));
        assert_eq!(tail.lines().last().unwrap().len(), TAIL_LINE_BYTES);
    }
}
