//! The header that opens each message of an export (`06.08.2016, 13:23 - `,
//! `[7/11/2017, 8:20:41 PM] `...), read by one hand-written matcher that knows
//! every family of formats and reports which one a line uses ([`Shape`]).

use std::fmt;

/// The character between the parts of a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateSep {
    /// `15/01/2020`
    Slash,
    /// `15.01.2020` (also `2020. 01. 15.`)
    Dot,
    /// `15-01-2020`
    Dash,
}

/// What comes between the time and the author.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lead {
    /// `13:23 - Name` (a hyphen or any dash).
    Dash,
    /// `13:23: Name`
    Colon,
    /// `13:23 Name`
    Space,
    /// `[...13:23] Name`
    Bracket,
}

/// The layout of a header, without its values: one per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// `[date time] ` as iOS writes it.
    pub bracketed: bool,
    /// Between the parts of the date.
    pub date_sep: DateSep,
    /// A comma between date and time.
    pub comma: bool,
    /// A word between date and time (Finnish `klo`).
    pub word: bool,
    /// `:` or `.` between hours and minutes.
    pub time_sep: u8,
    /// The time has seconds.
    pub seconds: bool,
    /// 12-hour clock with AM/PM.
    pub twelve_hour: bool,
    /// Before the author.
    pub lead: Lead,
}

impl fmt::Display for Shape {
    /// A short name: `android-24h-dotted`, `ios-12h-slashed`, with suffixes
    /// for the less common variants.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let platform = if self.bracketed { "ios" } else { "android" };
        let clock = if self.twelve_hour { "12h" } else { "24h" };
        let sep = match self.date_sep {
            DateSep::Slash => "slashed",
            DateSep::Dot => "dotted",
            DateSep::Dash => "dashed",
        };
        write!(f, "{platform}-{clock}-{sep}")?;
        if self.seconds != self.bracketed {
            f.write_str(if self.seconds {
                "-seconds"
            } else {
                "-no-seconds"
            })?;
        }
        if self.word {
            f.write_str("-worded")?;
        }
        match self.lead {
            Lead::Colon => f.write_str("-colon"),
            Lead::Space => f.write_str("-spaced"),
            Lead::Dash | Lead::Bracket => Ok(()),
        }
    }
}

/// A header as read from a line, before its date's order is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader {
    /// The layout.
    pub shape: Shape,
    /// The three numbers of the date, in the line's order.
    pub nums: [u16; 3],
    /// How many digits each was written with.
    pub digits: [u8; 3],
    /// Hour as written (1-12 on a 12-hour clock).
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second (0 when the format has none).
    pub second: u8,
    /// PM on a 12-hour clock.
    pub pm: bool,
    /// Where the author (or the system text) starts.
    pub rest: usize,
}

/// A position in a line's bytes.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += usize::from(hit);
        hit
    }

    /// Up to `max` digits: the value and how many.
    fn number(&mut self, max: usize) -> Option<(u16, u8)> {
        let mut value: u16 = 0;
        let mut n = 0;
        while n < max {
            match self.peek() {
                Some(c @ b'0'..=b'9') => {
                    value = value * 10 + u16::from(c - b'0');
                    n += 1;
                    self.i += 1;
                }
                _ => break,
            }
        }
        let followed_by_digit = matches!(self.peek(), Some(b'0'..=b'9'));
        (n > 0 && !followed_by_digit).then_some((value, n as u8))
    }

    /// The length of a space here: ASCII, no-break (U+00A0) or narrow
    /// no-break (U+202F); 0 when none.
    fn space_len(&self) -> usize {
        match self.b[self.i.min(self.b.len())..] {
            [b' ' | b'\t', ..] => 1,
            [0xC2, 0xA0, ..] => 2,
            [0xE2, 0x80, 0xAF, ..] => 3,
            _ => 0,
        }
    }

    /// Skips spaces; how many.
    fn spaces(&mut self) -> usize {
        let mut n = 0;
        loop {
            let len = self.space_len();
            if len == 0 {
                return n;
            }
            self.i += len;
            n += 1;
        }
    }

    /// A hyphen, a dash or a minus sign.
    fn dash(&mut self) -> bool {
        let len = match self.b[self.i.min(self.b.len())..] {
            [b'-', ..] => 1,
            [0xE2, 0x80, 0x90..=0x95, ..] | [0xE2, 0x88, 0x92, ..] => 3,
            _ => 0,
        };
        self.i += len;
        len > 0
    }

    fn date_sep(&mut self) -> Option<DateSep> {
        let sep = match self.peek()? {
            b'/' => DateSep::Slash,
            b'.' => DateSep::Dot,
            _ if self.dash() => return Some(DateSep::Dash),
            _ => return None,
        };
        self.i += 1;
        Some(sep)
    }

    fn same_sep(&mut self, sep: DateSep) -> Option<()> {
        if self.date_sep()? != sep {
            return None;
        }
        // `2020. 01. 15.`: dotted dates may space their parts.
        if sep == DateSep::Dot && self.peek() == Some(b' ') {
            self.i += 1;
        }
        Some(())
    }

    /// A short word between date and time (`klo`, `um`, `à`), then spaces.
    fn word(&mut self) -> bool {
        let start = self.i;
        while self.i < self.b.len()
            && self.i - start < 8
            && self.space_len() == 0
            && !self.b[self.i].is_ascii_digit()
        {
            self.i += 1;
        }
        if self.i > start && self.space_len() > 0 {
            self.spaces();
            return true;
        }
        self.i = start;
        false
    }

    /// `AM`, `pm`, `a.m.`, `p. m.`...: whether it is PM.
    fn am_pm(&mut self) -> Option<bool> {
        let start = self.i;
        let pm = match self.peek() {
            Some(b'a' | b'A') => false,
            Some(b'p' | b'P') => true,
            _ => return None,
        };
        self.i += 1;
        self.eat(b'.');
        self.spaces();
        if !matches!(self.peek(), Some(b'm' | b'M')) {
            self.i = start;
            return None;
        }
        self.i += 1;
        self.eat(b'.');
        if self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            self.i = start;
            return None;
        }
        Some(pm)
    }
}

/// Reads the header at the start of a (mark-free) line, if it has one.
pub fn parse(line: &str) -> Option<RawHeader> {
    let mut c = Cursor {
        b: line.as_bytes(),
        i: 0,
    };
    let bracketed = c.eat(b'[');
    let (n0, d0) = c.number(4)?;
    let date_sep = c.date_sep()?;
    if date_sep == DateSep::Dot && c.peek() == Some(b' ') {
        c.i += 1;
    }
    let (n1, d1) = c.number(4)?;
    c.same_sep(date_sep)?;
    let (n2, d2) = c.number(4)?;
    if date_sep == DateSep::Dot {
        c.eat(b'.');
    }
    let comma = c.eat(b',');
    if c.spaces() == 0 {
        return None;
    }
    let word = c.word();
    let (hour, _) = c.number(2)?;
    let time_sep = c.peek().filter(|s| matches!(s, b':' | b'.'))?;
    c.i += 1;
    let (minute, md) = c.number(2)?;
    if md != 2 {
        return None;
    }
    let seconds = c.peek() == Some(time_sep) && c.b.get(c.i + 1).is_some_and(u8::is_ascii_digit);
    let second = if seconds {
        c.i += 1;
        match c.number(2)? {
            (s, 2) => s,
            _ => return None,
        }
    } else {
        0
    };
    let before_am_pm = c.i;
    c.spaces();
    let am_pm = c.am_pm();
    if am_pm.is_none() {
        c.i = before_am_pm;
    }
    let lead = lead(&mut c, bracketed)?;
    Some(RawHeader {
        shape: Shape {
            bracketed,
            date_sep,
            comma,
            word,
            time_sep,
            seconds,
            twelve_hour: am_pm.is_some(),
            lead,
        },
        nums: [n0, n1, n2],
        digits: [d0, d1, d2],
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        pm: am_pm == Some(true),
        rest: c.i,
    })
}

/// What separates the time from the author; the cursor left on the author.
fn lead(c: &mut Cursor<'_>, bracketed: bool) -> Option<Lead> {
    let at_end = |c: &Cursor<'_>| c.i >= c.b.len();
    if bracketed {
        if !c.eat(b']') {
            return None;
        }
        c.spaces();
        return Some(Lead::Bracket);
    }
    if c.peek() == Some(b':') && c.b.get(c.i + 1) == Some(&b' ') {
        c.i += 1;
        c.spaces();
        return Some(Lead::Colon);
    }
    if c.spaces() == 0 {
        return None;
    }
    if c.dash() {
        if c.spaces() == 0 && !at_end(c) {
            return None;
        }
        return Some(Lead::Dash);
    }
    (!at_end(c)).then_some(Lead::Space)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &str) -> RawHeader {
        match parse(line) {
            Some(h) => h,
            None => panic!("not a header: {line:?}"),
        }
    }

    #[test]
    fn android_day_first_dotted() {
        let h = read("06.08.2016, 13:23 - Ana: hola");
        assert_eq!(h.nums, [6, 8, 2016]);
        assert_eq!(h.digits, [2, 2, 4]);
        assert_eq!((h.hour, h.minute, h.second), (13, 23, 0));
        assert_eq!(h.shape.to_string(), "android-24h-dotted");
        assert_eq!(&"06.08.2016, 13:23 - Ana: hola"[h.rest..], "Ana: hola");
    }

    #[test]
    fn us_twelve_hour_with_a_narrow_no_break_space() {
        let line = "3/6/18, 1:55\u{202F}PM - Bo: hi";
        let h = read(line);
        assert_eq!(h.nums, [3, 6, 18]);
        assert!(h.shape.twelve_hour && h.pm);
        assert_eq!(h.shape.to_string(), "android-12h-slashed");
        assert_eq!(&line[h.rest..], "Bo: hi");
    }

    #[test]
    fn spanish_p_m_with_no_break_spaces() {
        for line in [
            "15/01/20, 2:22\u{A0}p.\u{A0}m. - Eva: qué tal",
            "15/01/20, 2:22 p. m. - Eva: qué tal",
            "15/01/20, 2:22\u{202F}p.\u{A0}m. - Eva: qué tal",
        ] {
            let h = read(line);
            assert!(h.shape.twelve_hour && h.pm, "{line:?}");
            assert_eq!(&line[h.rest..], "Eva: qué tal");
        }
        let h = read("15/01/20, 9:05\u{A0}a.\u{A0}m. - Eva: buenas");
        assert!(h.shape.twelve_hour && !h.pm);
    }

    #[test]
    fn am_pm_variants() {
        for (line, pm) in [
            ("1/2/20, 1:00 AM - A: x", false),
            ("1/2/20, 1:00 pm - A: x", true),
            ("1/2/20, 1:00 a.m. - A: x", false),
            ("1/2/20, 1:00 P.M. - A: x", true),
            ("1/2/20, 1:00PM - A: x", true),
        ] {
            let h = read(line);
            assert!(h.shape.twelve_hour, "{line:?}");
            assert_eq!(h.pm, pm, "{line:?}");
            assert_eq!(&line[h.rest..], "A: x", "{line:?}");
        }
    }

    #[test]
    fn a_name_that_starts_like_am_is_not_a_clock() {
        let line = "1/2/20 10:00 Amy: x";
        let h = read(line);
        assert!(!h.shape.twelve_hour);
        assert_eq!(h.shape.lead, Lead::Space);
        assert_eq!(&line[h.rest..], "Amy: x");
    }

    #[test]
    fn finnish_klo_with_a_dotted_time() {
        let line = "13.6.2018 klo 21.25 - Aino: moi";
        let h = read(line);
        assert_eq!(h.nums, [13, 6, 2018]);
        assert_eq!((h.hour, h.minute), (21, 25));
        assert!(h.shape.word && !h.shape.comma);
        assert_eq!(h.shape.time_sep, b'.');
        assert_eq!(&line[h.rest..], "Aino: moi");
    }

    #[test]
    fn ios_bracketed_with_seconds() {
        let line = "[7/11/2017, 8:20:41 PM] Cy: yo";
        let h = read(line);
        assert_eq!((h.hour, h.minute, h.second, h.pm), (8, 20, 41, true));
        assert_eq!(h.shape.to_string(), "ios-12h-slashed");
        assert_eq!(&line[h.rest..], "Cy: yo");
        let line = "[15/01/2020, 02:22:56] Cy: yo";
        let h = read(line);
        assert_eq!(h.shape.to_string(), "ios-24h-slashed");
        assert_eq!(&line[h.rest..], "Cy: yo");
    }

    #[test]
    fn year_first_forms() {
        let h = read("2020-01-15, 02:22 - A: x");
        assert_eq!((h.nums, h.digits), ([2020, 1, 15], [4, 2, 2]));
        assert_eq!(h.shape.date_sep, DateSep::Dash);
        let h = read("[2020/01/15 02:22:56] A: x");
        assert_eq!(h.nums, [2020, 1, 15]);
        assert!(!h.shape.comma && h.shape.seconds);
        let line = "2020. 01. 15. 2:22 - A: x";
        let h = read(line);
        assert_eq!(h.nums, [2020, 1, 15]);
        assert_eq!(&line[h.rest..], "A: x");
    }

    #[test]
    fn dashes_and_colons_before_the_author() {
        for line in [
            "15/01/2020, 02:22 - A: x",
            "15/01/2020, 02:22 \u{2013} A: x",
            "15/01/2020, 02:22 \u{2014} A: x",
            "15/01/2020, 02:22 \u{2010} A: x",
        ] {
            let h = read(line);
            assert_eq!(h.shape.lead, Lead::Dash, "{line:?}");
            assert_eq!(&line[h.rest..], "A: x");
        }
        let line = "15/01/2020 02:22: A: x";
        let h = read(line);
        assert_eq!(h.shape.lead, Lead::Colon);
        assert_eq!(&line[h.rest..], "A: x");
    }

    #[test]
    fn a_system_line_may_end_after_the_dash() {
        let h = read("15/01/2020, 02:22 -");
        assert_eq!(h.rest, "15/01/2020, 02:22 -".len());
    }

    #[test]
    fn lines_that_only_start_with_numbers_are_not_headers() {
        for line in [
            "3/4 of the cake",
            "12. item",
            "1/2/20",
            "1/2/20, 10:0 - A: x",
            "1/2/20, 10:00",
            "1/2/20, 10:00x",
            "12345/1/20, 10:00 - A: x",
            "1/2.20, 10:00 - A: x",
            "[1/2/20, 10:00 A: x",
            "1/2/20,10:00 - A: x",
            "",
            "[",
        ] {
            assert!(parse(line).is_none(), "{line:?}");
        }
    }
}
