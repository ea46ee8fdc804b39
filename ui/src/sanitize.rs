//! Text cleaning for anything that arrives from outside (WhatsApp, Redis).
//!
//! Message text is attacker-controlled: a contact could send terminal escape
//! sequences that clear the screen, retitle the window, or reorder text with
//! bidi controls. Everything shown by the dashboard must pass through here.
//!
//! Newlines: [`clean`] turns `\n` into a space (single-line fields such as
//! names, log text); [`clean_multiline`] keeps `\n` as a line separator
//! (message bodies). Carriage returns are always dropped, tabs become a space.

/// The character appended when text is cut to its maximum length.
pub const ELLIPSIS: char = '…';

/// Cleans `input` into single-line display text of at most `max_chars` chars.
pub fn clean(input: &str, max_chars: usize) -> String {
    clean_chars(input.chars(), max_chars, false)
}

/// Like [`clean`] but keeps `\n` so message bodies keep their lines.
pub fn clean_multiline(input: &str, max_chars: usize) -> String {
    clean_chars(input.chars(), max_chars, true)
}

/// Cleans raw bytes, replacing invalid UTF-8 with U+FFFD first.
pub fn clean_bytes(input: &[u8], max_chars: usize) -> String {
    clean(&String::from_utf8_lossy(input), max_chars)
}

/// What kind of string-terminated control sequence is being skipped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StringKind {
    /// OSC also ends at BEL (xterm convention), so honour that too.
    Osc,
    /// DCS, SOS, PM and APC end only at ST.
    Other,
}

/// Parser state while walking the input.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Text,
    /// Saw ESC, waiting for the byte that says which sequence follows.
    Escape,
    /// Inside `ESC <intermediates>`: waiting for the final byte.
    EscapeIntermediate,
    /// Inside a CSI: parameters and intermediates until a final byte.
    Csi,
    /// Inside a string sequence; the flag says an ESC was just seen.
    Str(StringKind, bool),
}

fn clean_chars(input: impl Iterator<Item = char>, max_chars: usize, keep_newlines: bool) -> String {
    let mut out = String::new();
    let mut count = 0usize;
    let mut state = State::Text;
    for c in input {
        state = match state {
            State::Text => text_char(c, keep_newlines, &mut out, &mut count),
            State::Escape => after_escape(c),
            State::EscapeIntermediate => match c {
                '\u{20}'..='\u{2f}' => State::EscapeIntermediate,
                _ => State::Text,
            },
            State::Csi => csi_char(c, keep_newlines, &mut out, &mut count),
            State::Str(kind, saw_esc) => string_char(kind, saw_esc, c),
        };
        // Stop early: one char past the cap is enough to know we must cut,
        // and it keeps megabyte inputs cheap.
        if count > max_chars {
            break;
        }
    }
    cap(out, count, max_chars)
}

fn cap(mut out: String, count: usize, max_chars: usize) -> String {
    if count <= max_chars {
        return out;
    }
    if max_chars == 0 {
        return String::new();
    }
    out = out.chars().take(max_chars - 1).collect();
    out.push(ELLIPSIS);
    out
}

fn push(out: &mut String, count: &mut usize, c: char) {
    out.push(c);
    *count += 1;
}

fn text_char(c: char, keep_newlines: bool, out: &mut String, count: &mut usize) -> State {
    match c {
        '\u{1b}' => return State::Escape,
        '\u{9b}' => return State::Csi,
        '\u{9d}' => return State::Str(StringKind::Osc, false),
        '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => return State::Str(StringKind::Other, false),
        '\t' => push(out, count, ' '),
        '\n' if keep_newlines => push(out, count, '\n'),
        '\n' => push(out, count, ' '),
        c if is_dropped(c) => {}
        c => push(out, count, c),
    }
    State::Text
}

/// Controls and invisible direction overrides that must never reach the screen,
/// and the emoji presentation selector (U+FE0F): with it the layout counts a
/// text-default symbol such as ❤ two columns wide while many terminals (tmux
/// among them) draw one, so every border after it on that row shifts.
fn is_dropped(c: char) -> bool {
    c.is_control() // C0, DEL and C1
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{fe0f}')
}

fn after_escape(c: char) -> State {
    match c {
        '[' => State::Csi,
        ']' => State::Str(StringKind::Osc, false),
        'P' | 'X' | '^' | '_' => State::Str(StringKind::Other, false),
        // ESC ( B and friends carry one more byte after the intermediates.
        '\u{20}'..='\u{2f}' => State::EscapeIntermediate,
        // Any other char completes a two-char escape and is swallowed with it.
        _ => State::Text,
    }
}

fn csi_char(c: char, keep_newlines: bool, out: &mut String, count: &mut usize) -> State {
    match c {
        '\u{20}'..='\u{3f}' => State::Csi,
        '\u{40}'..='\u{7e}' => State::Text,
        // A malformed CSI is abandoned; the interrupting char is text again.
        _ => text_char(c, keep_newlines, out, count),
    }
}

fn string_char(kind: StringKind, saw_esc: bool, c: char) -> State {
    match c {
        '\\' if saw_esc => State::Text,
        '\u{9c}' => State::Text,
        '\u{07}' if kind == StringKind::Osc => State::Text,
        '\u{1b}' => State::Str(kind, true),
        _ => State::Str(kind, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_plain_text_and_unicode() {
        assert_eq!(clean("héllo 世界 👍", 100), "héllo 世界 👍");
    }

    #[test]
    fn an_emoji_selector_goes_so_widths_agree_with_the_terminal() {
        assert_eq!(
            clean("Dad says hi \u{2764}\u{fe0f}", 100),
            "Dad says hi \u{2764}"
        );
        assert_eq!(clean("ok \u{1f44d}\u{fe0f}", 100), "ok \u{1f44d}");
    }

    #[test]
    fn strips_7bit_csi() {
        assert_eq!(clean("a\x1b[2Jb\x1b[1;31mred\x1b[0m", 100), "abred");
        assert_eq!(clean("x\x1b[?25ly", 100), "xy");
    }

    #[test]
    fn strips_osc_bel_and_st() {
        assert_eq!(clean("a\x1b]0;pwned\x07b", 100), "ab");
        assert_eq!(
            clean("a\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\b", 100),
            "alinkb"
        );
    }

    #[test]
    fn strips_dcs_sos_pm_apc() {
        for intro in ['P', 'X', '^', '_'] {
            let s = format!("a\x1b{intro}payload\x07still\x1b\\b");
            assert_eq!(clean(&s, 100), "ab", "intro {intro}");
        }
    }

    #[test]
    fn strips_8bit_c1_sequences() {
        assert_eq!(clean("a\u{9b}2Jb", 100), "ab");
        assert_eq!(clean("a\u{9d}0;pwned\u{9c}b", 100), "ab");
        assert_eq!(clean("a\u{90}dcs\u{9c}b", 100), "ab");
        assert_eq!(clean("a\u{9f}apc\x1b\\b", 100), "ab");
        assert_eq!(clean("a\u{85}\u{8d}b", 100), "ab");
    }

    #[test]
    fn lone_escape_eats_next_char() {
        assert_eq!(clean("a\x1bcb", 100), "ab");
        assert_eq!(clean("a\x1b(Bb", 100), "ab");
        assert_eq!(clean("end\x1b", 100), "end");
    }

    #[test]
    fn unterminated_sequences_drop_the_rest() {
        assert_eq!(clean("ok\x1b]0;never ends", 100), "ok");
        assert_eq!(clean("ok\x1b[12;", 100), "ok");
    }

    #[test]
    fn split_sequences_do_not_leak_when_joined() {
        let part1 = "hi\x1b[";
        let part2 = "2Jthere";
        assert_eq!(clean(&format!("{part1}{part2}"), 100), "hithere");
        // Each half alone is also harmless.
        assert_eq!(clean(part1, 100), "hi");
        assert!(!clean(part2, 100).contains('\x1b'));
    }

    #[test]
    fn malformed_csi_returns_to_text() {
        assert_eq!(clean("a\x1b[12\u{e9}b", 100), "a\u{e9}b");
    }

    #[test]
    fn strips_c0_del_and_bidi() {
        assert_eq!(clean("a\x00\x07\x08\x7fb", 100), "ab");
        let bidi = "a\u{202e}b\u{2066}c\u{2069}d\u{200e}e\u{200f}f\u{061c}g\u{202a}";
        assert_eq!(clean(bidi, 100), "abcdefg");
    }

    #[test]
    fn tabs_and_newlines() {
        assert_eq!(clean("a\tb\r\nc", 100), "a b c");
        assert_eq!(clean_multiline("a\tb\r\nc", 100), "a b\nc");
    }

    #[test]
    fn caps_with_ellipsis() {
        assert_eq!(clean("abcdef", 4), "abc…");
        assert_eq!(clean("abcd", 4), "abcd");
        assert_eq!(clean("abcd", 0), "");
        assert_eq!(clean("abcd", 1), "…");
    }

    #[test]
    fn caps_one_megabyte_quickly() {
        let big = "x\x1b[0m".repeat(200_000);
        let out = clean(&big, 1000);
        assert_eq!(out.chars().count(), 1000);
        assert!(out.ends_with(ELLIPSIS));
    }

    #[test]
    fn invalid_utf8_bytes_become_replacement() {
        let out = clean_bytes(b"ok\xff\xfe\x9b2J\x1b[31mred", 100);
        assert_eq!(out, "ok\u{fffd}\u{fffd}\u{fffd}2Jred");
    }

    #[test]
    fn idempotent() {
        let once = clean("a\x1b]0;x\x07b\u{202e}c", 3);
        assert_eq!(clean(&once, 3), once);
    }
}
