//! Durations as people type them in flags and config files (`90s`, `2h30m`).
//! A bottom-layer helper: the settings and the language model's table both read
//! durations, and neither imports the other for it.

use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Parses `90s`, `30m`, `1h`, `2h30m`, `1d`; a bare number means minutes.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    if text.is_empty() {
        bail!("empty duration");
    }
    if let Ok(minutes) = text.parse::<u64>() {
        return positive(Duration::from_secs(minutes.saturating_mul(60)));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number
            .parse()
            .with_context(|| format!("expected a number before `{c}` in {text:?}"))?;
        number.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            other => bail!("unknown unit `{other}` in {text:?} (use s, m, h or d)"),
        };
        total = total.saturating_add(n.saturating_mul(unit));
    }
    if !number.is_empty() {
        bail!("missing unit after {number} in {text:?} (use s, m, h or d)");
    }
    positive(Duration::from_secs(total))
}

fn positive(d: Duration) -> Result<Duration> {
    if d.is_zero() {
        bail!("a duration must be more than zero");
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30m").expect("ok"),
            Duration::from_secs(1800)
        );
        assert_eq!(
            parse_duration("2h30m").expect("ok"),
            Duration::from_secs(9000)
        );
        assert_eq!(parse_duration("45").expect("ok"), Duration::from_secs(2700));
        assert_eq!(parse_duration("90s").expect("ok"), Duration::from_secs(90));
        assert!(parse_duration("0m").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("10").is_ok());
        // A huge count saturates instead of overflowing.
        assert_eq!(
            parse_duration("99999999999999999999").ok(),
            None,
            "past u64 is no number"
        );
        assert!(parse_duration(&u64::MAX.to_string()).is_ok());
    }
}
