//! Chat lines for the unit tests of learning and of the learned chat's store.

use super::{ChatLine, LineKind};

/// A line of `kind` at `ts`, the owner's when `me`.
pub(crate) fn line_of(ts: i64, me: bool, kind: LineKind, text: &str) -> ChatLine {
    ChatLine {
        ts,
        me,
        kind,
        text: text.to_owned(),
    }
}

/// A text line at `ts`, the owner's when `me`.
pub(crate) fn line(ts: i64, me: bool, text: &str) -> ChatLine {
    line_of(ts, me, LineKind::Text, text)
}

/// The owner's text line.
pub(crate) fn mine(ts: i64, text: &str) -> ChatLine {
    line(ts, true, text)
}

/// The contact's text line.
pub(crate) fn theirs(ts: i64, text: &str) -> ChatLine {
    line(ts, false, text)
}
