//! The event trace: one line per event (who, what happened), with the notes of what it
//! caused appended; written only when `Options::trace` is on.

use super::World;

impl World {
    pub(in crate::sim) fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    pub(in crate::sim) fn push_note(&mut self, text: String) {
        if self.line.is_empty() {
            self.line = format!("{:>7} {:<4}", self.now_ms, "-");
        }
        self.line.push_str(" | ");
        self.line.push_str(&text);
    }

    /// Starts the current event's line: who, and what happened to it.
    pub(in crate::sim) fn begin(&mut self, who: &str, what: String) {
        if self.tracing() {
            self.end_line();
            self.line = format!("{:>7} {who:<4} {what}", self.now_ms);
        }
    }

    pub(super) fn end_line(&mut self) {
        if let Some(trace) = &mut self.trace
            && !self.line.is_empty()
        {
            trace.push(std::mem::take(&mut self.line));
        }
    }
}
