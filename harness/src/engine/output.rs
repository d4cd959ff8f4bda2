//! What a container or a command printed, kept within bounds whatever its size: the first `HEAD`
//! bytes (the text judged whole when everything fits), the last `TAIL` bytes (for messages), and
//! every line, seen once as it streams past by the patterns a check watches for. A stack that
//! prints gigabytes costs time, never memory.

use crate::suite::Pattern;

/// Output up to this size is kept whole.
pub const HEAD: usize = 4 << 20;
/// How much of the end of a longer output is kept for messages.
const TAIL: usize = 64 << 10;
/// A line longer than this is judged in pieces of this size, each overlapping the last by
/// `OVERLAP` bytes (a match longer than that across a cut can be missed).
const LINE: usize = 1 << 20;
const OVERLAP: usize = 4 << 10;
/// The most of a line a message quotes, and the longest line handed to a line callback.
const QUOTE: usize = 1000;

/// Reads a stream to its end on a task of its own, beside the runtime's I/O driver, and waits
/// for what `read` returns; dropping the wait (a bound ran out) stops the read. The engine sends
/// a log as a frame per line: a gigabyte is a million frames, and each woke the run's whole
/// future on the thread blocked on it, a cross-thread wake per frame that cost more than the
/// matching. On a worker, a frame wakes this task alone.
pub(crate) async fn read_on_worker<T: Send + 'static>(
    read: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(read));
    match task.await {
        Ok(v) => v,
        // A panic in the read is the caller's panic; the task is aborted only when dropped.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[derive(Debug)]
struct Watch {
    pattern: Pattern,
    /// The first line it matched: number (1-based) and text (cut to `QUOTE`).
    found: Option<(usize, String)>,
}

/// Bounded output with the first match of each watched pattern.
#[derive(Debug)]
pub struct Captured {
    limit: usize,
    head: Vec<u8>,
    /// The end of the output once it is cut: between `TAIL` and twice that many bytes.
    tail: Vec<u8>,
    total: u64,
    /// The unfinished last line (complete lines are scanned as they arrive).
    pending: Vec<u8>,
    /// Complete lines scanned so far.
    lines: usize,
    watches: Vec<Watch>,
}

impl Default for Captured {
    fn default() -> Captured {
        Captured::watching(&[])
    }
}

impl Captured {
    /// Output kept up to `HEAD` bytes, every line seen by `patterns`.
    pub fn watching(patterns: &[Pattern]) -> Captured {
        Captured {
            limit: HEAD,
            head: Vec::new(),
            tail: Vec::new(),
            total: 0,
            pending: Vec::new(),
            lines: 0,
            watches: patterns
                .iter()
                .map(|p| Watch {
                    pattern: p.clone(),
                    found: None,
                })
                .collect(),
        }
    }

    /// Output kept whole: what the harness asked for from the user's own files (a compose model).
    pub fn whole() -> Captured {
        Captured {
            limit: usize::MAX,
            ..Captured::default()
        }
    }

    /// A text already in memory, seen by `patterns` (for judging a short answer the same way).
    pub fn of(text: &str, patterns: &[Pattern]) -> Captured {
        let mut c = Captured::watching(patterns);
        c.push(text.as_bytes());
        c.finish();
        c
    }

    /// The next bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.limit.saturating_sub(self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..room]);
        if self.is_cut() {
            self.tail
                .extend_from_slice(&bytes[bytes.len().saturating_sub(TAIL)..]);
            if self.tail.len() > 2 * TAIL {
                self.tail.drain(..self.tail.len() - TAIL);
            }
        }
        if self.watches.iter().all(|w| w.found.is_some()) {
            return;
        }
        self.pending.extend_from_slice(bytes);
        if let Some(last) = memchr::memrchr(b'\n', &self.pending) {
            let rest = self.pending.split_off(last + 1);
            let complete = std::mem::replace(&mut self.pending, rest);
            self.scan(&complete);
        }
        if self.pending.len() > LINE {
            // An endless line: judge this piece, keep its end for a match across the cut.
            let piece = std::mem::take(&mut self.pending);
            self.scan(&piece);
            self.pending = piece[piece.len() - OVERLAP..].to_vec();
        }
    }

    /// The end of the output: an unfinished last line is a line.
    pub fn finish(&mut self) {
        if !self.pending.is_empty() {
            let last = std::mem::take(&mut self.pending);
            self.scan(&last);
            self.lines += 1;
        }
    }

    /// Looks for every pattern not yet found in `region` (whole lines, or a piece of one).
    fn scan(&mut self, region: &[u8]) {
        for w in self.watches.iter_mut().filter(|w| w.found.is_none()) {
            if let Some(at) = w.pattern.find(region) {
                let start = memchr::memrchr(b'\n', &region[..at]).map_or(0, |i| i + 1);
                let end = memchr::memchr(b'\n', &region[at..]).map_or(region.len(), |i| at + i);
                let number = self.lines + newlines(&region[..at]) + 1;
                w.found = Some((number, quote(&region[start..end])));
            }
        }
        self.lines += newlines(region);
    }

    /// More came than is kept.
    pub fn is_cut(&self) -> bool {
        self.total > self.limit as u64
    }

    /// How many bytes came.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The output as text: whole when it was kept whole; else its head, how much was left out,
    /// and its tail.
    pub fn text(&self) -> String {
        let head = String::from_utf8_lossy(&self.head);
        if !self.is_cut() {
            return head.into_owned();
        }
        let kept = &self.tail[self.tail.len().saturating_sub(TAIL)..];
        let tail = String::from_utf8_lossy(kept);
        let left_out = self.total - self.head.len() as u64 - kept.len() as u64;
        format!(
            "{head}\n[stackcheck: {left_out} bytes left out of {} not kept]\n{tail}",
            self.total
        )
    }

    /// Whether `pattern` matches: in the whole text when it was kept whole, else in some line.
    pub fn matches(&self, pattern: &Pattern) -> bool {
        if self.is_cut() {
            self.found(pattern).is_some()
        } else {
            pattern.is_match(&self.head)
        }
    }

    /// The first line a watched pattern matched: its number and text. Only patterns given to
    /// [`Captured::watching`] are scanned: asking for another is a bug of ours (it would read as
    /// "not found", a false pass for an `_excludes`), so tests and debug builds stop on it.
    pub fn found(&self, pattern: &Pattern) -> Option<(usize, &str)> {
        let watch = self
            .watches
            .iter()
            .find(|w| w.pattern.written() == pattern.written());
        debug_assert!(watch.is_some(), "`{}` was never watched", pattern.written());
        watch
            .and_then(|w| w.found.as_ref())
            .map(|(n, line)| (*n, line.as_str()))
    }
}

fn newlines(bytes: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', bytes).count()
}

/// A line as a message quotes it: lossy UTF-8, no trailing `\r`, at most `QUOTE` characters.
fn quote(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = String::from_utf8_lossy(&line[..line.len().min(QUOTE * 4)]);
    match text.char_indices().nth(QUOTE) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.into_owned(),
    }
}

/// The patterns a check watches for in each stream of a command.
#[derive(Clone, Debug, Default)]
pub struct Watching {
    /// Watched in stdout.
    pub stdout: Vec<Pattern>,
    /// Watched in stderr.
    pub stderr: Vec<Pattern>,
}

/// Splits a byte stream into lines, each cut to `max` bytes however long the stream's lines are.
pub struct Lines {
    max: usize,
    partial: Vec<u8>,
    /// The current line went past `max`: the rest of it is dropped.
    overflow: bool,
}

impl Lines {
    /// Lines for a progress callback: what a person reads (a line of `QUOTE` characters at most).
    pub fn for_display() -> Lines {
        Lines::new(QUOTE * 4)
    }

    /// Lines for matching: as long as a line is judged whole (`LINE`).
    pub fn for_matching() -> Lines {
        Lines::new(LINE)
    }

    fn new(max: usize) -> Lines {
        Lines {
            max,
            partial: Vec::new(),
            overflow: false,
        }
    }

    /// The lines `bytes` completes.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = bytes;
        // memchr, not a byte-by-byte split: a log of a million lines goes through here.
        loop {
            let end = memchr::memchr(b'\n', rest);
            let body = &rest[..end.unwrap_or(rest.len())];
            let room = self.max.saturating_sub(self.partial.len());
            self.overflow |= body.len() > room;
            self.partial
                .extend_from_slice(&body[..body.len().min(room)]);
            let Some(end) = end else { break };
            out.push(self.take());
            rest = &rest[end + 1..];
        }
        out
    }

    /// The unfinished last line, if any.
    pub fn rest(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let bytes = std::mem::take(&mut self.partial);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(&bytes);
        let mut line = String::from_utf8_lossy(bytes).into_owned();
        if std::mem::take(&mut self.overflow) {
            line.push('…');
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn p(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }

    #[rstest]
    #[case(&["ok\n", "all fine\n"], "/error/", None)]
    #[case(&["ok\nan err", "or here\nmore\n"], "/error/", Some((2, "an error here")))]
    #[case(&["x\ny\n", "Traceback (most recent", " call last):"], "Traceback", Some((3, "Traceback (most recent call last):")))]
    fn lines_are_found_across_chunks(
        #[case] chunks: &[&str],
        #[case] pattern: &str,
        #[case] want: Option<(usize, &str)>,
    ) {
        let mut c = Captured::watching(&[p(pattern)]);
        for chunk in chunks {
            c.push(chunk.as_bytes());
        }
        c.finish();
        assert_eq!(c.found(&p(pattern)), want);
    }

    /// Gigabytes in, a few megabytes kept; a line deep past the kept head is still found.
    #[test]
    fn long_output_is_cut_and_still_seen_whole() {
        let mut c = Captured::watching(&[p("/^needle [0-9]+$/"), p("never")]);
        let block = "some line of output\n".repeat(10_000);
        for _ in 0..200 {
            c.push(block.as_bytes());
        }
        c.push(b"needle 42\n");
        c.push(block.as_bytes());
        c.finish();
        assert!(c.is_cut());
        assert_eq!(c.total(), 201 * block.len() as u64 + 10);
        assert_eq!(
            c.found(&p("/^needle [0-9]+$/")),
            Some((2_000_001, "needle 42"))
        );
        assert!(c.found(&p("never")).is_none());
        assert!(c.matches(&p("/^needle [0-9]+$/")));
        let text = c.text();
        assert!(text.len() < HEAD + TAIL + 200, "{}", text.len());
        assert!(text.contains("bytes left out of"));
        assert!(c.pending.capacity() <= 2 * LINE, "{}", c.pending.capacity());
    }

    /// One endless line is judged in pieces, with a match across a cut found.
    #[test]
    fn an_endless_line_is_judged_in_pieces() {
        let mut c = Captured::watching(&[p("FATAL")]);
        let a = vec![b'a'; LINE - 2];
        c.push(&a);
        c.push(b"FAT");
        c.push(b"AL");
        c.push(&a);
        c.push(&a);
        c.finish();
        assert_eq!(c.found(&p("FATAL")).map(|(n, _)| n), Some(1));
        assert!(c.pending.len() <= LINE + OVERLAP);
    }

    #[test]
    fn callback_lines_are_cut() {
        let mut lines = Lines::for_display();
        let long = "x".repeat(10_000);
        let got = lines.feed(format!("short\n{long}\nlast").as_bytes());
        assert_eq!(got[0], "short");
        assert_eq!(got[1].chars().count(), QUOTE * 4 + 1);
        assert_eq!(lines.rest().as_deref(), Some("last"));
    }
}
