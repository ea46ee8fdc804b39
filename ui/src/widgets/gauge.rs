//! Compact queue gauge: `queue ███░░░░░ 123/1000`.

use ratatui::style::Style;
use ratatui::text::Span;

use crate::theme::Theme;

/// How full the queue is, for styling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// At most 70%.
    Ok,
    /// Above 70%.
    Warn,
    /// Above 90%.
    Critical,
}

/// Level for `len` of `cap`; a zero capacity with items queued is critical.
pub fn level(len: u64, cap: u64) -> Level {
    if cap == 0 {
        return if len == 0 { Level::Ok } else { Level::Critical };
    }
    // Integer maths avoids float edge cases exactly at the thresholds.
    let (len, cap) = (u128::from(len), u128::from(cap));
    if len * 10 > cap * 9 {
        Level::Critical
    } else if len * 10 > cap * 7 {
        Level::Warn
    } else {
        Level::Ok
    }
}

/// A bar of `cells` characters, filled in proportion (rounded up when non-empty).
pub fn bar(len: u64, cap: u64, cells: usize) -> String {
    let filled = if cap == 0 {
        if len == 0 { 0 } else { cells }
    } else {
        let exact = u128::from(len.min(cap)) * cells as u128;
        exact.div_ceil(u128::from(cap)) as usize
    };
    let filled = filled.min(cells);
    "█".repeat(filled) + &"░".repeat(cells - filled)
}

/// Styled spans of the whole gauge; `!`/`!!` mark warn/critical without colour.
pub fn spans(len: u64, cap: u64, cells: usize, theme: &Theme) -> Vec<Span<'static>> {
    let lvl = level(len, cap);
    let (style, mark): (Style, &str) = match lvl {
        Level::Ok => (theme.ok, ""),
        Level::Warn => (theme.warn, " !"),
        Level::Critical => (theme.critical, " !!"),
    };
    vec![
        Span::styled("queue ", theme.text),
        Span::styled(bar(len, cap, cells), style),
        Span::styled(format!(" {len}/{cap}{mark}"), style),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(level(0, 1000), Level::Ok);
        assert_eq!(level(700, 1000), Level::Ok);
        assert_eq!(level(701, 1000), Level::Warn);
        assert_eq!(level(900, 1000), Level::Warn);
        assert_eq!(level(901, 1000), Level::Critical);
        assert_eq!(level(5000, 1000), Level::Critical);
        assert_eq!(level(1, 0), Level::Critical);
    }

    #[test]
    fn bars() {
        assert_eq!(bar(0, 1000, 4), "░░░░");
        assert_eq!(bar(1, 1000, 4), "█░░░");
        assert_eq!(bar(500, 1000, 4), "██░░");
        assert_eq!(bar(2000, 1000, 4), "████");
    }
}
