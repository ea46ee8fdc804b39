//! Text for the terminal: what came from outside made printable, tables, spans
//! and clock times as the control room shows them.

/// Longest string from outside shown in one cell or line of the CLI's output.
const MAX_SHOWN: usize = 200;

/// Text from outside (Redis, imported files) made safe for the terminal with the
/// control room's sanitiser: whole escape sequences, C0/C1 controls and bidi
/// controls removed, one line, capped.
pub(super) fn printable(s: &str) -> String {
    secondme_ui::sanitize::clean(s, MAX_SHOWN)
}

/// Prints left-aligned columns; cells are made printable first because names
/// come from imported files and must not drive the terminal.
pub(super) fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| printable(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    (*c).to_owned()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", text.join("  "));
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// The items joined with commas, or `none`.
pub(super) fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// A span of `ms` as the control room shows it (`2d03h`, `1h05m`, `4m`, `9s`),
/// whole seconds rounded up like its countdowns.
pub(super) fn format_ms(ms: i64) -> String {
    secondme_ui::format::coarse_duration(secondme_ui::format::remaining_secs(ms, 0))
}

/// `HH:MM:SS` UTC of a ms timestamp.
pub(super) fn format_clock(ms: i64) -> String {
    format!("{} UTC", secondme_ui::format::clock_hms(ms, 0))
}
