//! What the twin learned from the person's own chats, for one contact, as the
//! control room shows it: a few figures of the style profile (a part of the
//! engine's `learn::StyleProfile`) and the last eval (`LEARN:eval:{contactId}`,
//! the JSON of `secondme eval --json`). The binary reads them for the selected
//! contact; every string here came from a chat or from Redis and is cleaned by
//! `update` before it is kept.

/// Most top emoji or laughs kept.
pub const MAX_TOP: usize = 3;
/// Most eval measures kept.
pub const MAX_MEASURES: usize = 24;

/// What was learned for one contact.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LearnedView {
    /// The contact it was read for: the panel shows it only while that contact
    /// is selected.
    pub contact_id: String,
    /// The style profile; `None`: nothing learned at all, not even overall.
    pub profile: Option<LearnedProfile>,
    /// The contact's last eval, if one was run.
    pub eval: Option<LastEval>,
}

/// The figures of a style profile the panel shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LearnedProfile {
    /// The profile is this contact's own; false: the overall one (the contact
    /// has no learned chat yet).
    pub from_contact: bool,
    /// Text messages measured.
    pub samples: u64,
    /// Median length, characters.
    pub median_chars: f64,
    /// Share of messages whose first letter is lowercase, `0..=1`.
    pub starts_lowercase: f64,
    /// Share of messages ending with a period, `0..=1`.
    pub ends_with_period: f64,
    /// Emoji per message.
    pub emoji_per_message: f64,
    /// Most used emoji, most first.
    pub top_emoji: Vec<String>,
    /// Laughs per message.
    pub laughter_per_message: f64,
    /// Most used laughs, most first.
    pub top_laughter: Vec<String>,
    /// The owner's median reply time, seconds.
    pub reply_time_median_s: Option<f64>,
}

/// The last eval: how close the twin's replies came to the owner's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LastEval {
    /// When it ran, ms since the epoch.
    pub at_ms: Option<i64>,
    /// Replies held out.
    pub holdout: u64,
    /// The twin's style distance (lower is closer).
    pub twin_distance: f64,
    /// The baseline's (the same engine without learning).
    pub baseline_distance: Option<f64>,
    /// Each measure: the owner's figure beside the twin's.
    pub measures: Vec<Measure>,
}

/// One measure of the last eval.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measure {
    /// The profile's field name (e.g. `starts_lowercase`).
    pub name: String,
    /// The owner's real figure.
    pub owner: f64,
    /// The twin's generated replies' figure.
    pub twin: f64,
}

/// How a measure reads on screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// A share, `0..=1`, shown as a percentage; a bar's full length is 100%.
    Share,
    /// A count or a rate, shown as a number; a bar's full length is the
    /// larger of the two figures.
    Amount,
}

impl Measure {
    /// Its label in plain words, and how it reads. An unknown measure keeps
    /// its name and reads as an amount.
    pub fn label(&self) -> (&str, Scale) {
        Measure::describe(&self.name)
    }

    /// How the measure called `name` reads.
    pub fn scale_of(name: &str) -> Scale {
        Measure::describe(name).1
    }

    fn describe(name: &str) -> (&str, Scale) {
        let (label, scale) = match name {
            "samples" => ("messages", Scale::Amount),
            "median_chars" => ("length", Scale::Amount),
            "p90_chars" => ("long (p90)", Scale::Amount),
            "emoji_per_message" => ("emoji/msg", Scale::Amount),
            "starts_lowercase" => ("lowercase", Scale::Share),
            "ends_with_period" => ("period", Scale::Share),
            "exclamations_per_message" => ("!/msg", Scale::Amount),
            "questions_per_message" => ("?/msg", Scale::Amount),
            "ellipsis_share" => ("ellipsis", Scale::Share),
            "laughter_per_message" => ("laughs/msg", Scale::Amount),
            "several_in_a_row" => ("in a row", Scale::Share),
            "messages_per_turn" => ("msgs/turn", Scale::Amount),
            "reply_time_median_s" => ("reply time", Scale::Amount),
            other => (other, Scale::Amount),
        };
        (label, scale)
    }
}
