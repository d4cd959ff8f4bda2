//! Captured output (logs, command output, compose errors) cut down to one line for a message.

/// Shortens captured output for one-line messages.
pub fn snippet(text: &str, max: usize) -> String {
    clip(text, max, false)
}

/// The end of `text` on one line: where a failing command says why (the last line of a traceback).
pub fn tail_snippet(text: &str, max: usize) -> String {
    clip(text, max, true)
}

fn clip(text: &str, max: usize, keep_end: bool) -> String {
    let t = text.trim();
    let n = t.chars().count();
    let one_line = |s: &str| s.replace('\n', "\\n");
    if n <= max {
        one_line(t)
    } else if keep_end {
        format!(
            "…{}",
            one_line(&t.chars().skip(n - max).collect::<String>())
        )
    } else {
        format!("{}…", one_line(&t.chars().take(max).collect::<String>()))
    }
}
