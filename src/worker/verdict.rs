//! What the server-side steps answer for each entry, parsed once at the edge:
//! the decide step gives a [`Verdict`] per entry, the commit step a [`Committed`] per
//! reply, and both may add [`ScriptReply::warnings`] about best-effort writes.

use std::fmt;

use thiserror::Error;

/// Why an incoming message gets no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The global kill switch is on.
    KillSwitch,
    /// The person has not enabled the twin for this contact.
    NotEnabled,
    /// The contact is paused.
    Paused,
    /// Sleep hours.
    SleepHours,
    /// The contact went over the rate limit and was paused.
    RateLimit,
    /// Its voice note or photo could not be understood: left for the operator.
    Unreadable,
}

/// The decide step's verdict on one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The reply written before the decision went out with it.
    Sent,
    /// The reply written before the decision became the contact's draft (draft mode).
    Drafted,
    /// To be answered: the reply is written next and committed by the commit step.
    Answer,
    /// Handled before (a redelivery): acknowledged, nothing else.
    Duplicate,
    /// The gateway's echo of a reply the twin sent.
    Echo,
    /// The person typed to the contact: paused.
    Takeover,
    /// An outgoing message recorded.
    Recorded,
    /// Kept for the end of the sleep hours (`sleep_mode = "defer"`).
    Deferred,
    /// Not answered, for this reason.
    Skipped(Skip),
    /// This entry's own keys stopped the step (a foreign type or value); nothing was
    /// written for it and it is still pending.
    Failed(String),
}

/// The commit step's result for one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Written to `QUEUE:responses`.
    Sent,
    /// Kept as the contact's draft (draft mode).
    Drafted,
    /// Answered before (a redelivery).
    Duplicate,
    /// A pause, the kill switch, sleep hours or opt-in came in while it was written.
    Withheld,
    /// This reply's contact keys stopped the step; nothing written, still pending.
    Failed(String),
}

/// A script's answer that is not in its vocabulary: a bug on one side or the other.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("the {script} script answered {found:?}, which the worker does not know")]
pub struct UnknownVerdict {
    script: &'static str,
    found: String,
}

impl UnknownVerdict {
    /// `found` is not in the vocabulary of step `script`.
    pub fn new(script: &'static str, found: &str) -> Self {
        Self {
            script,
            found: found.to_owned(),
        }
    }
}

const FAILED: &str = "fail:";
const WARNING: &str = "warn:";

impl Verdict {
    /// Parses one verdict of the decide step.
    pub fn parse(s: &str) -> Result<Self, UnknownVerdict> {
        if let Some(why) = s.strip_prefix(FAILED) {
            return Ok(Self::Failed(why.to_owned()));
        }
        Ok(match s {
            "sent" => Self::Sent,
            "drafted" => Self::Drafted,
            "answer" => Self::Answer,
            "duplicate" => Self::Duplicate,
            "echo" => Self::Echo,
            "takeover" => Self::Takeover,
            "recorded" => Self::Recorded,
            "deferred" => Self::Deferred,
            "skip:kill_switch" => Self::Skipped(Skip::KillSwitch),
            "skip:not_enabled" => Self::Skipped(Skip::NotEnabled),
            "skip:paused" => Self::Skipped(Skip::Paused),
            "skip:sleep_hours" => Self::Skipped(Skip::SleepHours),
            "skip:rate_limit" => Self::Skipped(Skip::RateLimit),
            "skip:unreadable" => Self::Skipped(Skip::Unreadable),
            _ => {
                return Err(UnknownVerdict {
                    script: "decision",
                    found: s.to_owned(),
                });
            }
        })
    }
}

impl Committed {
    /// Parses one result of the commit step.
    pub fn parse(s: &str) -> Result<Self, UnknownVerdict> {
        if let Some(why) = s.strip_prefix(FAILED) {
            return Ok(Self::Failed(why.to_owned()));
        }
        Ok(match s {
            "sent" => Self::Sent,
            "drafted" => Self::Drafted,
            "duplicate" => Self::Duplicate,
            "withheld" => Self::Withheld,
            _ => {
                return Err(UnknownVerdict {
                    script: "commit",
                    found: s.to_owned(),
                });
            }
        })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sent => f.write_str("sent"),
            Self::Drafted => f.write_str("drafted"),
            Self::Answer => f.write_str("to answer"),
            Self::Duplicate => f.write_str("duplicate"),
            Self::Echo => f.write_str("echo of a sent reply"),
            Self::Takeover => f.write_str("takeover"),
            Self::Recorded => f.write_str("recorded"),
            Self::Deferred => f.write_str("deferred to the end of the sleep hours"),
            Self::Skipped(skip) => write!(f, "skipped ({skip:?})"),
            Self::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// A script's whole answer: one item per entry, then its warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptReply<T> {
    /// One per entry, in the entries' order.
    pub items: Vec<T>,
    /// Best-effort writes that failed (activity scores, counters), for the log.
    pub warnings: Vec<String>,
}

impl<T> ScriptReply<T> {
    /// Splits `raw` into `expected` items parsed by `parse` and the trailing warnings.
    pub fn parse(
        raw: Vec<String>,
        expected: usize,
        parse: impl Fn(&str) -> Result<T, UnknownVerdict>,
    ) -> anyhow::Result<Self> {
        let mut items = Vec::with_capacity(expected);
        let mut warnings = Vec::new();
        for s in raw {
            match s.strip_prefix(WARNING) {
                Some(w) => warnings.push(w.to_owned()),
                None => items.push(parse(&s)?),
            }
        }
        anyhow::ensure!(
            items.len() == expected,
            "a script returned {} verdicts for {expected} entries",
            items.len()
        );
        Ok(Self { items, warnings })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wire_verdict_parses_and_unknown_ones_are_errors() {
        assert_eq!(Verdict::parse("sent"), Ok(Verdict::Sent));
        assert_eq!(
            Verdict::parse("skip:rate_limit"),
            Ok(Verdict::Skipped(Skip::RateLimit))
        );
        assert_eq!(
            Verdict::parse("fail:HISTORY:x: WRONGTYPE"),
            Ok(Verdict::Failed("HISTORY:x: WRONGTYPE".into()))
        );
        assert!(Verdict::parse("skip:whatever").is_err());
        assert_eq!(Committed::parse("withheld"), Ok(Committed::Withheld));
        assert_eq!(Verdict::parse("drafted"), Ok(Verdict::Drafted));
        assert_eq!(Verdict::parse("deferred"), Ok(Verdict::Deferred));
        assert_eq!(
            Verdict::parse("skip:unreadable"),
            Ok(Verdict::Skipped(Skip::Unreadable))
        );
        assert_eq!(Committed::parse("drafted"), Ok(Committed::Drafted));
        assert!(Committed::parse("answer").is_err());
    }

    #[test]
    fn warnings_trail_the_items_and_the_count_is_checked() {
        let raw = vec![
            "sent".into(),
            "duplicate".into(),
            "warn:SECONDME:stats: ERR".into(),
        ];
        let r = ScriptReply::parse(raw.clone(), 2, Verdict::parse).expect("parses");
        assert_eq!(r.items, [Verdict::Sent, Verdict::Duplicate]);
        assert_eq!(r.warnings, ["SECONDME:stats: ERR"]);
        assert!(ScriptReply::parse(raw, 3, Verdict::parse).is_err());
    }
}
