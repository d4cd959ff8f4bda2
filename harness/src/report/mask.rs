//! Progress through the masking rule ([`crate::mask`]): every phase and detail line is masked
//! before it reaches the real progress.

use super::Outcome;
use super::Progress;
use crate::mask::Masker;

/// Progress that masks every phase and work line before it reaches the real one, and names the
/// suite in each phase (suites may run at the same time).
pub struct Masked<'a> {
    /// Where the masked progress goes.
    pub inner: &'a dyn Progress,
    /// What it masks.
    pub masker: Masker,
    /// `suite: `
    pub prefix: String,
}

impl Progress for Masked<'_> {
    fn phase(&self, msg: &str) {
        let msg = self.masker.mask(msg);
        if msg.starts_with(&self.prefix) {
            self.inner.phase(&msg);
        } else {
            self.inner.phase(&format!("{}{msg}", self.prefix));
        }
    }
    fn detail(&self, msg: &str) {
        self.inner.detail(&self.masker.mask(msg));
    }
    /// Outcomes arrive masked: `Runner::record` masks each once, for the report and the console.
    fn outcome(&self, outcome: &Outcome) {
        self.inner.outcome(outcome);
    }
}
