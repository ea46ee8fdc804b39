//! The embedded engine: deterministic and offline. When the person's past
//! exchanges with this contact hold one like the message (above the similarity
//! threshold), it answers with what the person actually wrote then, never the
//! same reply twice in a row, never a reply to another contact (those are
//! style examples for a prompt, not replies), never a media placeholder and
//! never one longer than [`MAX_REUSED_CHARS`]. Otherwise phatic messages get a
//! short answer in the persona's tone, and others a reply built from the style
//! guide's register and the persona's own example messages, written with the
//! owner's measured habits when a profile was learned.

use super::input::Speaker;
use super::styled::in_owner_style;
use super::{Reply, ReplyEngine, ReplyRequest, paced_delay_ms};
use crate::learn::LearnConfig;
use crate::learn::placeholder::holds_gateway_media;

/// The longest past reply sent again, in characters: the language model's
/// default reply cap (`max_reply_chars`), so no engine writes longer.
pub const MAX_REUSED_CHARS: usize = 600;

/// The embedded persona engine.
#[derive(Debug, Clone)]
pub struct PersonaEngine {
    /// A past reply is reused only for an exchange at least this similar (`0..=1`).
    similarity: f32,
}

impl Default for PersonaEngine {
    fn default() -> Self {
        Self::new(&LearnConfig::default())
    }
}

impl PersonaEngine {
    /// The engine with the `[learn]` settings' similarity threshold.
    pub fn new(learn: &LearnConfig) -> Self {
        Self {
            similarity: learn.similarity,
        }
    }
}

/// Words that make a message phatic when it has nothing else (lowercase).
const PHATIC: &[&str] = &[
    "ok", "okay", "k", "kk", "lol", "haha", "hahaha", "thanks", "thank", "you", "thx", "ty",
    "cool", "nice", "great", "sure", "yes", "yep", "yeah", "no", "nope", "np", "hi", "hey",
    "hello", "bye", "night", "good", "morning", "gn", "gm", "👍", "❤️", "😂", "🙏", "🙂",
];

/// True for short messages made only of phatic words ("ok", "lol", "thanks!").
pub fn is_phatic(text: &str) -> bool {
    let mut words = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| c.is_ascii_punctuation()))
        .filter(|w| !w.is_empty());
    let mut n = 0;
    // The list is ASCII and emoji, so comparing without case needs no allocation.
    words.all(|w| {
        n += 1;
        n <= 3 && PHATIC.iter().any(|p| p.eq_ignore_ascii_case(w))
    }) && n > 0
}

/// A stable hash, so the same message always gets the same reply.
fn stable_hash(text: &str) -> u64 {
    crate::stable_hash::fnv1a64(text.as_bytes())
}

fn phatic_answer(tone: &str, pick: u64) -> &'static str {
    let options: &[&'static str] = match tone {
        "formal" => &["Thank you.", "Noted, thanks.", "Understood."],
        "warm" => &["❤️", "aw 🥰", "hugs!"],
        _ => &["👍", "haha", "yep!", "😄"],
    };
    options[(pick % options.len() as u64) as usize]
}

fn substantive_answer(request: &ReplyRequest<'_>, pick: u64) -> String {
    let examples = &request.persona.example_messages;
    let base = if examples.is_empty() {
        "I'll get back to you soon."
    } else {
        examples[(pick % examples.len() as u64) as usize].as_str()
    };
    let text = request.message.content.trim();
    if let Some(topic) = mentioned_topic(request) {
        let lead = match request.persona.tone.as_str() {
            "formal" => format!("Regarding {topic}:"),
            "warm" => format!("oh, {topic}!"),
            _ => format!("ooh {topic},"),
        };
        return format!("{lead} {base}");
    }
    if text.ends_with('?') {
        let lead = match request.persona.tone.as_str() {
            "formal" => "Good question.",
            "warm" => "aw, good question!",
            _ => "hmm good q,",
        };
        format!("{lead} {base}")
    } else {
        base.to_owned()
    }
}

/// A topic the graph says this contact brings up, when the message names it.
fn mentioned_topic<'a>(request: &ReplyRequest<'a>) -> Option<&'a str> {
    let text = request.message.content.to_lowercase();
    request
        .context?
        .topics
        .iter()
        .find(|t| !t.is_empty() && text.contains(&t.to_lowercase()))
        .map(String::as_str)
}

/// What the person wrote last in the conversation (themselves or the twin for
/// them), before the message being answered.
fn last_reply<'a>(request: &ReplyRequest<'a>) -> Option<&'a str> {
    request
        .history
        .iter()
        .rev()
        .filter(|h| h.message_id != request.message.message_id)
        .find(|h| matches!(h.speaker, Speaker::Owner | Speaker::Twin))
        .map(|h| h.text.trim())
}

/// The person's own reply, in this chat, to the most similar past exchange at
/// least `threshold` similar: not the last reply sent (in the history, or handed
/// out by this process and not there yet), not a placeholder, not too long.
fn past_reply<'a>(request: &ReplyRequest<'a>, threshold: f32) -> Option<&'a str> {
    let learned = request.learned?;
    let last = [last_reply(request), learned.last_sent.as_deref()];
    let mut candidates: Vec<&(crate::learn::Exchange, f32)> = learned
        .examples
        .iter()
        .filter(|(e, sim)| *sim >= threshold && reusable(e.me.trim()))
        .collect();
    // Best first whatever order they came in; equal ones keep it.
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1));
    candidates
        .into_iter()
        .map(|(e, _)| e.me.trim())
        .find(|me| !last.iter().flatten().any(|l| l.trim() == *me))
}

/// Whether a past reply may be sent again as it is.
fn reusable(me: &str) -> bool {
    !me.is_empty() && me.chars().count() <= MAX_REUSED_CHARS && !holds_gateway_media(me)
}

impl ReplyEngine for PersonaEngine {
    async fn reply(&self, request: &ReplyRequest<'_>) -> anyhow::Result<Reply> {
        let pick = stable_hash(&request.message.message_id) ^ stable_hash(&request.message.content);
        let content = if let Some(past) = past_reply(request, self.similarity) {
            past.to_owned()
        } else {
            let template = if is_phatic(&request.message.content) {
                phatic_answer(&request.persona.tone, pick).to_owned()
            } else {
                substantive_answer(request, pick)
            };
            match request.learned {
                Some(l) => match &l.profile {
                    Some(profile) => in_owner_style(&template, profile, pick, l.from_contact),
                    None => template,
                },
                None => template,
            }
        };
        let jitter = (pick >> 11) as f64 / (1u64 << 53) as f64;
        let delay_ms = paced_delay_ms(&content, jitter, request.learned);
        Ok(Reply { content, delay_ms })
    }

    fn instant(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Direction, PersonaCache, QueueMessage};

    fn message(content: &str) -> QueueMessage {
        QueueMessage {
            message_id: "m1".into(),
            contact_id: "c1".into(),
            content: content.into(),
            timestamp: 1,
            direction: Direction::Incoming,
            from_me: false,
        }
    }

    fn persona(tone: &str) -> PersonaCache {
        PersonaCache {
            style_guide: "brief".into(),
            tone: tone.into(),
            example_messages: vec!["Understood, I will come back to you today.".into()],
        }
    }

    #[test]
    fn phatic_detection() {
        assert!(is_phatic("ok"));
        assert!(is_phatic("Thanks!"));
        assert!(is_phatic("lol 😂"));
        assert!(!is_phatic("ok but when is the meeting tomorrow?"));
        assert!(!is_phatic(""));
        assert!(is_phatic("HEY thx"));
        assert!(
            !is_phatic("ok ok ok ok"),
            "more than three words is a sentence"
        );
        assert!(!is_phatic("?!"));
    }

    #[tokio::test]
    async fn replies_follow_the_persona_and_are_stable() {
        let engine = PersonaEngine::default();
        let m = message("Can you review the contract?");
        let p = persona("formal");
        let req = ReplyRequest {
            message: &m,
            persona_id: "professional",
            persona: &p,
            context: None,
            history: &[],
            learned: None,
        };
        let a = engine.reply(&req).await.expect("reply");
        let b = engine.reply(&req).await.expect("reply");
        assert_eq!(a, b);
        assert!(a.content.starts_with("Good question."), "{}", a.content);
        assert!(a.content.contains("Understood"));
        assert!((2000 + 300..=5000 + 300 * 20).contains(&a.delay_ms));
        let ok = message("ok");
        let phatic = engine
            .reply(&ReplyRequest {
                message: &ok,
                persona_id: "professional",
                persona: &p,
                context: None,
                history: &[],
                learned: None,
            })
            .await
            .expect("reply");
        assert!(["Thank you.", "Noted, thanks.", "Understood."].contains(&phatic.content.as_str()));
    }

    #[tokio::test]
    async fn a_topic_the_graph_knows_is_picked_up() {
        let m = message("What did you think of the Q3 budget numbers?");
        let p = persona("formal");
        let context = crate::reply::input::ContactContext {
            topics: vec!["Q3 budget".into()],
            ..Default::default()
        };
        let reply = PersonaEngine::default()
            .reply(&ReplyRequest {
                message: &m,
                persona_id: "professional",
                persona: &p,
                context: Some(&context),
                history: &[],
                learned: None,
            })
            .await
            .expect("reply");
        assert!(
            reply.content.starts_with("Regarding Q3 budget:"),
            "{}",
            reply.content
        );
    }

    fn exchanges(examples: &[(&str, &str, f32)]) -> Vec<(crate::learn::Exchange, f32)> {
        examples
            .iter()
            .map(|(them, me, sim)| {
                let e = crate::learn::Exchange {
                    ts: 1,
                    them: (*them).into(),
                    me: (*me).into(),
                    reply_ms: None,
                };
                (e, *sim)
            })
            .collect()
    }

    fn learned(examples: &[(&str, &str, f32)]) -> crate::learn::Learned {
        crate::learn::Learned {
            from_contact: true,
            examples: exchanges(examples),
            ..crate::learn::Learned::default()
        }
    }

    async fn answer(
        engine: &PersonaEngine,
        text: &str,
        learned: &crate::learn::Learned,
        history: &[crate::reply::input::HistoryTurn],
    ) -> Reply {
        let m = message(text);
        let p = persona("casual");
        engine
            .reply(&ReplyRequest {
                message: &m,
                persona_id: "casual",
                persona: &p,
                context: None,
                history,
                learned: Some(learned),
            })
            .await
            .expect("reply")
    }

    fn said(id: &str, speaker: Speaker, text: &str) -> crate::reply::input::HistoryTurn {
        crate::reply::input::HistoryTurn {
            message_id: id.into(),
            speaker,
            text: text.into(),
            timestamp: 1,
        }
    }

    #[tokio::test]
    async fn a_past_reply_is_reused_only_above_the_threshold() {
        let engine = PersonaEngine::new(&LearnConfig {
            similarity: 0.6,
            ..LearnConfig::default()
        });
        let close = learned(&[
            ("barbecue on saturday?", "bora!! levo a picanha", 0.9),
            ("saturday?", "acho que sim", 0.7),
        ]);
        let r = answer(&engine, "barbecue saturday?", &close, &[]).await;
        assert_eq!(r.content, "bora!! levo a picanha");
        let far = learned(&[("barbecue on saturday?", "bora!! levo a picanha", 0.59)]);
        let r = answer(&engine, "Can you review the contract?", &far, &[]).await;
        assert_eq!(
            r.content,
            "hmm good q, Understood, I will come back to you today."
        );
        let r = answer(&engine, "Can you review the contract?", &learned(&[]), &[]).await;
        assert!(r.content.contains("Understood"), "templates: {}", r.content);
    }

    #[tokio::test]
    async fn the_same_past_reply_is_never_sent_twice_in_a_row() {
        let engine = PersonaEngine::default();
        let l = learned(&[
            ("barbecue on saturday?", "bora!! levo a picanha", 0.9),
            ("saturday barbecue", "sábado sim", 0.8),
            ("barbecue", "weak one", 0.2),
        ]);
        let after_twin = [
            said("m0", Speaker::Contact, "barbecue?"),
            said("bot_m0", Speaker::Twin, "bora!! levo a picanha"),
            said("m1", Speaker::Contact, "barbecue saturday?"),
        ];
        let r = answer(&engine, "barbecue saturday?", &l, &after_twin).await;
        assert_eq!(r.content, "sábado sim", "the next best above the threshold");
        let after_owner = [said("o1", Speaker::Owner, " sábado sim ")];
        let r = answer(&engine, "barbecue saturday?", &l, &after_owner).await;
        assert_eq!(r.content, "bora!! levo a picanha");
        let only = learned(&[("barbecue on saturday?", "bora!! levo a picanha", 0.9)]);
        let r = answer(&engine, "barbecue saturday?", &only, &after_twin).await;
        assert_ne!(r.content, "bora!! levo a picanha", "else the templates");
        assert!(r.content.contains("Understood"), "{}", r.content);
    }

    #[tokio::test]
    async fn the_typing_time_follows_the_owners_reply_time_and_is_stable() {
        let engine = PersonaEngine::default();
        let mut l = learned(&[("barbecue on saturday?", "bora", 0.9)]);
        let plain = answer(&engine, "barbecue saturday?", &l, &[]).await;
        l.profile = Some(crate::learn::StyleProfile {
            reply_time_median_s: Some(40.0),
            ..crate::learn::StyleProfile::default()
        });
        let slow = answer(&engine, "barbecue saturday?", &l, &[]).await;
        assert_eq!(slow, answer(&engine, "barbecue saturday?", &l, &[]).await);
        assert_eq!(slow.delay_ms, (plain.delay_ms + 40_000) / 2);
    }

    #[tokio::test]
    async fn only_this_chats_short_written_replies_are_sent_again() {
        let engine = PersonaEngine::default();
        let asked = "barbecue saturday?";
        // Another chat's reply, however close, is a style example only.
        let mut l = learned(&[]);
        l.other_chats = exchanges(&[("", "bora!! levo a picanha", 1.0)]);
        let r = answer(&engine, asked, &l, &[]).await;
        assert_ne!(r.content, "bora!! levo a picanha");
        // A placeholder learned as text, or a letter, is never sent.
        let letter = "a".repeat(MAX_REUSED_CHARS + 1);
        let l = learned(&[
            (asked, "[sticker]", 1.0),
            (asked, "yes!\n[photo] the grill", 0.95),
            (asked, &letter, 0.9),
            (asked, "sim, sábado", 0.8),
        ]);
        let r = answer(&engine, asked, &l, &[]).await;
        assert_eq!(r.content, "sim, sábado");
        let fits = "b".repeat(MAX_REUSED_CHARS);
        let r = answer(&engine, asked, &learned(&[(asked, &fits, 0.9)]), &[]).await;
        assert_eq!(r.content, fits);
    }

    #[tokio::test]
    async fn the_reply_handed_out_last_is_not_sent_again_before_it_is_history() {
        let engine = PersonaEngine::default();
        let mut l = learned(&[
            ("barbecue on saturday?", "bora!! levo a picanha", 0.9),
            ("saturday barbecue", "sábado sim", 0.8),
        ]);
        l.last_sent = Some("bora!! levo a picanha".into());
        let r = answer(&engine, "barbecue saturday?", &l, &[]).await;
        assert_eq!(r.content, "sábado sim");
    }
}
