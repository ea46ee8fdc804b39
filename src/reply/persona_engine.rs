//! The embedded engine: deterministic and offline. Phatic messages get a short
//! answer in the persona's tone; others get a reply built from the style guide's
//! register and the persona's own example messages.

use super::{Reply, ReplyEngine, ReplyRequest, human_delay_ms};

/// The embedded persona engine.
#[derive(Debug, Default, Clone)]
pub struct PersonaEngine;

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

impl ReplyEngine for PersonaEngine {
    async fn reply(&self, request: &ReplyRequest<'_>) -> anyhow::Result<Reply> {
        let pick = stable_hash(&request.message.message_id) ^ stable_hash(&request.message.content);
        let content = if is_phatic(&request.message.content) {
            phatic_answer(&request.persona.tone, pick).to_owned()
        } else {
            substantive_answer(request, pick)
        };
        let jitter = (pick >> 11) as f64 / (1u64 << 53) as f64;
        let delay_ms = human_delay_ms(&content, jitter);
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
        let engine = PersonaEngine;
        let m = message("Can you review the contract?");
        let p = persona("formal");
        let req = ReplyRequest {
            message: &m,
            persona_id: "professional",
            persona: &p,
            context: None,
            history: &[],
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
        let reply = PersonaEngine
            .reply(&ReplyRequest {
                message: &m,
                persona_id: "professional",
                persona: &p,
                context: Some(&context),
                history: &[],
            })
            .await
            .expect("reply");
        assert!(
            reply.content.starts_with("Regarding Q3 budget:"),
            "{}",
            reply.content
        );
    }
}
