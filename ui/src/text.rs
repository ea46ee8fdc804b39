//! Width-aware truncation and wrapping (terminal columns, not bytes).

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Display width of `s` in terminal columns.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

fn char_width(c: char) -> usize {
    UnicodeWidthChar::width(c).unwrap_or(0)
}

/// Cuts `s` to at most `max` columns, ending in `…` when something was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = char_width(c);
        if used + w > max - 1 {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

/// `s` truncated and right-padded with spaces to exactly `cols` columns.
pub fn fit(s: &str, cols: usize) -> String {
    let mut out = truncate(s, cols);
    let pad = cols.saturating_sub(width(&out));
    out.extend(std::iter::repeat_n(' ', pad));
    out
}

/// Greedy word wrap to `cols` columns; `\n` starts a new line.
///
/// Words longer than a line are split by character. Never returns an
/// empty vector for non-zero `cols`, so an empty message still takes a row.
pub fn wrap(s: &str, cols: usize) -> Vec<String> {
    if cols == 0 {
        return Vec::new();
    }
    let mut lines = Vec::new();
    for para in s.split('\n') {
        wrap_paragraph(para, cols, &mut lines);
    }
    lines
}

fn wrap_paragraph(para: &str, cols: usize, lines: &mut Vec<String>) {
    let mut line = String::new();
    let mut used = 0;
    for word in para.split(' ').filter(|w| !w.is_empty()) {
        let w = width(word);
        let sep = usize::from(used > 0);
        if used + sep + w <= cols {
            if sep == 1 {
                line.push(' ');
            }
            line.push_str(word);
            used += sep + w;
            continue;
        }
        if used > 0 {
            lines.push(std::mem::take(&mut line));
        }
        if w <= cols {
            line.push_str(word);
            used = w;
        } else {
            used = split_long_word(word, cols, lines, &mut line);
        }
    }
    lines.push(line);
}

/// Hard-splits a word wider than the line; leaves the tail in `line`.
fn split_long_word(word: &str, cols: usize, lines: &mut Vec<String>, line: &mut String) -> usize {
    let mut used = 0;
    for c in word.chars() {
        let w = char_width(c);
        if used + w > cols && used > 0 {
            lines.push(std::mem::take(line));
            used = 0;
        }
        line.push(c);
        used += w;
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_by_columns() {
        assert_eq!(truncate("hello", 10), "hello");
        assert_eq!(truncate("hello", 4), "hel…");
        assert_eq!(truncate("世界世界", 5), "世界…");
        assert_eq!(truncate("abc", 0), "");
        assert_eq!(fit("ab", 4), "ab  ");
    }

    #[test]
    fn wraps_words_and_long_words() {
        assert_eq!(wrap("one two three", 7), vec!["one two", "three"]);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("a\nb", 10), vec!["a", "b"]);
        assert_eq!(wrap("", 10), vec![""]);
        assert!(wrap("x", 0).is_empty());
        assert_eq!(wrap("👍👍👍", 4), vec!["👍👍", "👍"]);
        assert_eq!(wrap("世", 1), vec!["世"]);
    }
}
