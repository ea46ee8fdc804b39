//! The model's text made into one WhatsApp message, or refused: no label, no
//! quotes, no markdown, not too long; never an empty text, a refusal, a word on
//! what the writer is ("as an AI", "soy ChatGPT"), a repeat of the prompt, or a
//! message written to someone else.

mod addressee;
mod echo;
mod machine;

use super::chat::strip_think_tags;

/// Labels a model puts before its line ("Assistant: ..."), lowercase.
const LABELS: &[&str] = &[
    "assistant",
    "me",
    "you",
    "reply",
    "answer",
    "response",
    "bot",
    "ai",
    "twin",
    "message",
];

/// Phrases that give the twin away; a reply holding one is refused. Matched on
/// the lowercased text with typographic apostrophes made plain. What the writer
/// says it is ("I'm a large language model") is found by
/// [`machine::says_what_it_is`].
const GIVEAWAYS: &[&str] = &["ai language model", "a bot designed"];

/// An assistant's refusal to help, whole: the model declined, which says nothing
/// of the contact, so the text is dropped as unusable (tried again), never taken
/// for a leak. "I'm sorry, but I can only do Tuesday" is a person's reply.
const DECLINES: &[&str] = &[
    "i cannot assist",
    "i can't assist",
    "i cannot help with that.",
    "i can't help with that.",
    "i'm sorry, but i can't",
    "i'm sorry, but i cannot",
    "i apologize, but i can't",
    "i apologize, but i cannot",
    "i'm not able to help with",
];

/// The model declined to help.
const DECLINED: Dropped = "the model declined to answer";

/// Why a text was dropped.
pub type Dropped = &'static str;

/// The text was empty once cleaned.
const EMPTY: Dropped = "empty";
/// The model stopped at its token cap before any sentence ended.
const CUT_OFF: Dropped = "cut off by the token cap before a sentence ended";

/// Whether `why` refuses what the text says (the instructions, a confession, a
/// message for someone else), as opposed to a text with nothing to send.
pub fn is_refusal(why: Dropped) -> bool {
    why != EMPTY && why != CUT_OFF && why != DECLINED
}

/// What a reply is checked against besides itself.
#[derive(Debug, Clone, Copy)]
pub struct Guard<'a> {
    /// Labels the model may put before its line, and the writer's own names
    /// (the person's, the persona's): an owner called Claude may say so.
    pub names: &'a [&'a str],
    /// The system prompt the model was sent, which a reply must not repeat.
    pub system: &'a str,
    /// The persona's example messages, which a reply may resemble.
    pub examples: &'a [String],
    /// The contact's name, when known.
    pub contact: Option<&'a str>,
    /// The reply's length cap, in characters.
    pub max_chars: usize,
}

/// Cleans `raw` under `guard`; `cut_off` says the model stopped at its token
/// cap, so the text ends mid-sentence. Errors say why the text was dropped.
pub fn clean(raw: &str, guard: &Guard<'_>, cut_off: bool) -> Result<String, Dropped> {
    let text = strip_think_tags(raw);
    let text = strip_markdown(&text);
    let text = strip_label(&text, guard.names);
    let text = strip_quotes(&text);
    let text = tidy_lines(&text);
    // A reply cut by the token cap would reach the contact mid-word: keep its
    // whole sentences, or nothing.
    let text = if cut_off {
        whole_sentences(&text).ok_or(CUT_OFF)?
    } else {
        text
    };
    if text.is_empty()
        || !text
            .chars()
            .any(|c| !c.is_whitespace() && !c.is_ascii_punctuation())
    {
        return Err(EMPTY);
    }
    // More than the cap keeps is judged: a model that went on into its
    // instructions is not to be trusted with the start. Not all of it: a
    // hostile server may send a megabyte of words.
    match refused(judged(&text, guard.max_chars), guard) {
        Some(why) => Err(why),
        None => Ok(cap(&text, guard.max_chars)),
    }
}

/// Characters judged, at least, whatever the cap.
const JUDGED_MIN_CHARS: usize = 4096;

/// The start of `text` that is judged: four times the cap, at least
/// [`JUDGED_MIN_CHARS`].
fn judged(text: &str, max_chars: usize) -> &str {
    let limit = max_chars.saturating_mul(4).max(JUDGED_MIN_CHARS);
    text.char_indices()
        .nth(limit)
        .map_or(text, |(i, _)| &text[..i])
}

/// Why `text` may not reach the contact, if it may not.
fn refused(text: &str, guard: &Guard<'_>) -> Option<Dropped> {
    let lower = text.to_lowercase().replace('\u{2019}', "'");
    if GIVEAWAYS.iter().any(|g| lower.contains(g)) {
        return Some("an AI disclaimer");
    }
    machine::says_what_it_is(text, guard.names)
        .or_else(|| echo::repeats_the_prompt(text, guard.system, guard.examples))
        .or_else(|| addressee::written_to_someone_else(text, guard.contact))
        .or_else(|| {
            DECLINES
                .iter()
                .any(|d| lower.contains(d))
                .then_some(DECLINED)
        })
}

/// Whether a finish reason means the model hit its token cap (OpenAI's
/// `length`, Anthropic's `max_tokens`).
pub fn stopped_at_cap(finish_reason: Option<&str>) -> bool {
    matches!(finish_reason, Some("length" | "max_tokens"))
}

fn strip_markdown(text: &str) -> String {
    let mut lines = Vec::new();
    for line in text.lines() {
        let mut l = line.trim_start();
        // Headings, bullets, quotes.
        l = l.trim_start_matches('#').trim_start();
        for marker in ["- ", "* ", "• ", "> "] {
            if let Some(rest) = l.strip_prefix(marker) {
                l = rest;
            }
        }
        lines.push(unlink(l));
    }
    let joined = lines.join("\n");
    ["**", "__", "~~", "```", "`"]
        .iter()
        .fold(joined, |t, m| t.replace(m, ""))
}

/// `[text](url)` becomes `text (url)`.
fn unlink(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find("](") else {
            break;
        };
        let Some(end) = after[close + 2..].find(')') else {
            break;
        };
        let label = &after[..close];
        let url = &after[close + 2..close + 2 + end];
        out.push_str(&rest[..open]);
        out.push_str(label);
        out.push_str(" (");
        out.push_str(url);
        out.push(')');
        rest = &after[close + 2 + end + 1..];
    }
    out.push_str(rest);
    out
}

/// Removes a leading "Name:" whose name is a known label.
fn strip_label(text: &str, names: &[&str]) -> String {
    let mut t = text.trim();
    while let Some((head, rest)) = t.split_once(':') {
        let head = head.trim().to_lowercase();
        let known = LABELS.contains(&head.as_str())
            || names
                .iter()
                .any(|n| !n.is_empty() && n.to_lowercase() == head);
        if !known {
            break;
        }
        t = rest.trim_start();
    }
    t.to_owned()
}

fn strip_quotes(text: &str) -> String {
    let pairs = [
        ('"', '"'),
        ('\'', '\''),
        ('“', '”'),
        ('‘', '’'),
        ('«', '»'),
        ('„', '“'),
    ];
    let mut t = text.trim();
    loop {
        let mut chars = t.chars();
        let (Some(first), Some(last)) = (chars.next(), chars.next_back()) else {
            break;
        };
        let wrapped = pairs.iter().any(|&(a, b)| first == a && last == b);
        // Only when the quote does not occur inside too ("'a' or 'b'" stays).
        let inner = &t[first.len_utf8()..t.len() - last.len_utf8()];
        if !wrapped || inner.contains(first) || inner.contains(last) {
            break;
        }
        t = inner.trim();
    }
    t.to_owned()
}

/// Trims each line and drops empty and repeated ones: a WhatsApp message, not a
/// letter, and small models loop.
fn tidy_lines(text: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && seen.insert(l.to_lowercase()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text up to its last sentence end, or `None` without one. The text was
/// cut by the token cap, so a `.` at its very end may be a decimal point
/// ("at 7." of "at 7.45"): only `!`, `?` and `…` end it there.
fn whole_sentences(text: &str) -> Option<String> {
    let at_end = text
        .trim_end()
        .ends_with(['!', '?', '…'])
        .then_some(text.len());
    let end = at_end.or_else(|| last_sentence_end(text, text.len()))?;
    Some(text[..end].trim_end().to_owned())
}

/// The byte offset just after the last sentence end at or before `limit`: a
/// `.`, `!`, `?` or `…` followed by whitespace, so "7.45" and "example.com"
/// are not ends.
fn last_sentence_end(text: &str, limit: usize) -> Option<usize> {
    let mut chars = text.char_indices().peekable();
    let mut last = None;
    while let Some((i, c)) = chars.next() {
        let end = i + c.len_utf8();
        if end > limit {
            break;
        }
        let followed_by_space = chars.peek().is_some_and(|&(_, n)| n.is_whitespace());
        if matches!(c, '.' | '!' | '?' | '…') && followed_by_space {
            last = Some(end);
        }
    }
    last
}

/// At most `max` characters, cut after the last sentence end that fits; without
/// one, at the last space.
fn cap(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let end = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
    let head = &text[..end];
    let cut = last_sentence_end(text, end)
        .unwrap_or_else(|| head.rfind(char::is_whitespace).unwrap_or(end));
    head[..cut].trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`clean`] with nothing to compare the text to but itself.
    fn plain(
        raw: &str,
        names: &[&str],
        max_chars: usize,
        cut_off: bool,
    ) -> Result<String, Dropped> {
        let guard = Guard {
            names,
            system: "",
            examples: &[],
            contact: None,
            max_chars,
        };
        clean(raw, &guard, cut_off)
    }

    #[test]
    fn labels_quotes_and_markdown_go() {
        assert_eq!(
            plain("Sam: \"sure, see you at 8!\"", &["Sam"], 300, false),
            Ok("sure, see you at 8!".into())
        );
        assert_eq!(
            plain("Assistant: **yes** totally", &[], 300, false),
            Ok("yes totally".into())
        );
        assert_eq!(plain("“ok then”", &[], 300, false), Ok("ok then".into()));
        assert_eq!(
            plain(
                "# Plan\n- bring `snacks`\n- see [map](http://m.example)",
                &[],
                300,
                false
            ),
            Ok("Plan\nbring snacks\nsee map (http://m.example)".into())
        );
        assert_eq!(
            plain("Note: the time changed", &[], 300, false),
            Ok("Note: the time changed".into())
        );
        assert_eq!(
            plain("'a' or 'b'", &[], 300, false),
            Ok("'a' or 'b'".into())
        );
        assert_eq!(
            plain("<think>they want a yes</think>yes!", &[], 300, false),
            Ok("yes!".into())
        );
    }

    #[test]
    fn long_replies_end_at_a_sentence() {
        let text = "First one. Second one is longer! Third goes on and on and on";
        assert_eq!(
            plain(text, &[], 40, false),
            Ok("First one. Second one is longer!".into())
        );
        assert_eq!(
            plain("no stops at all in this text", &[], 12, false),
            Ok("no stops at".into())
        );
    }

    #[test]
    fn empty_refusals_and_ai_confessions_are_dropped() {
        for bad in [
            "",
            "   ",
            "\"\"",
            "...",
            "<think>only thinking",
            "As an AI, I don't have plans.",
            "I'm sorry, but I can't help with that.",
            "Sure! As a language model I cannot meet you.",
            "I’m sorry for any confusion, I’m a bot designed to meet your needs.",
            "I am a bot, I can't come.",
            "I'm sorry for any confusion, but as a chatbot, I don't have the capability to send messages.",
        ] {
            assert!(plain(bad, &[], 300, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_reply_cut_at_the_token_cap_keeps_its_whole_sentences_or_is_dropped() {
        assert_eq!(
            plain(
                "I'm so glad you're enjoying it! I'm always happy to help with anything that",
                &[],
                300,
                true
            ),
            Ok("I'm so glad you're enjoying it!".into())
        );
        assert!(plain("see you at the usual place near the", &[], 300, true).is_err());
        // Without the cap, an open end is the model's own choice.
        assert_eq!(
            plain("see you at the usual place", &[], 300, false),
            Ok("see you at the usual place".into())
        );
        assert!(stopped_at_cap(Some("length")));
        assert!(stopped_at_cap(Some("max_tokens")));
        assert!(!stopped_at_cap(Some("stop")));
        assert!(!stopped_at_cap(None));
    }

    #[test]
    fn a_decimal_point_or_a_domain_is_no_sentence_end() {
        for cut in [
            "Sure, meet at 7.45 by the",
            "ok see you at 8.30 at the",
            "check example.com for the",
            "meet at 7.",
        ] {
            assert!(plain(cut, &[], 300, true).is_err(), "{cut:?}");
        }
        assert_eq!(
            plain("Sure! Meet at 7.45 by the", &[], 300, true),
            Ok("Sure!".into())
        );
        assert_eq!(
            plain("see you then?", &[], 300, true),
            Ok("see you then?".into())
        );
        assert_eq!(
            plain(
                "Meet at 7.45 tonight. Bring the map from example.com please",
                &[],
                40,
                false
            ),
            Ok("Meet at 7.45 tonight.".into())
        );
    }

    #[test]
    fn every_way_of_saying_it_is_a_machine_is_dropped() {
        for bad in [
            "I'm a large language model, trained by Google.",
            "As a large language model, I can't meet you.",
            "I am just a language model.",
            "I'm only a virtual assistant",
            "As an LLM I don't eat.",
            "Im an AI lol",
            "i am an ai",
            "As an AI, I don't have plans.",
            "I'm a friendly chatbot!",
            "I am a computer program.",
        ] {
            assert!(plain(bad, &[], 300, false).is_err(), "{bad:?}");
        }
        for fine in [
            "I worked as an assistant at the vet for 3 years",
            "I'm an assistant manager now",
            "the bot in that game was so annoying",
            "as a kid I loved robots",
            "I'm a big fan of AI art tbh",
        ] {
            assert_eq!(
                plain(fine, &[], 300, false),
                Ok(fine.to_owned()),
                "{fine:?}"
            );
        }
    }

    #[test]
    fn talking_about_language_models_is_no_confession() {
        assert_eq!(
            plain(
                "what is a language model anyway? it predicts words",
                &[],
                300,
                false
            ),
            Ok("what is a language model anyway? it predicts words".into())
        );
        assert!(plain("I'm a language model, so no.", &[], 300, false).is_err());
    }

    #[test]
    fn a_line_the_model_repeats_is_kept_once() {
        assert_eq!(
            plain(
                "srs.\nyou can't eat now.\nYou can't eat now.\nyou can't eat now.",
                &[],
                300,
                false
            ),
            Ok("srs.\nyou can't eat now.".into())
        );
    }

    /// Statements on what the writer is, by language: refused, then passing.
    const WHAT_IT_IS: &[(&str, &[&str], &[&str])] = &[
        (
            "English",
            &[
                "I'm actually an AI",
                "I'm ChatGPT",
                "This is an automated reply",
                "As Sam's AI twin, I can't say",
                "I am not a human, just software",
                "You're talking to a bot lol",
                "I'm Claude, made by Anthropic",
                "I'm GPT-4o, so no plans for me",
            ],
            &[
                "the bot in my game is annoying",
                "did you see the AI news",
                "I love Claude Monet",
                "I'm an AI engineer at Acme now",
                "as a kid I loved robots",
                "I'm a Gemini, we're like that",
            ],
        ),
        (
            "Spanish",
            &[
                "Soy una inteligencia artificial",
                "Lo siento, como IA no tengo planes",
                "Soy ChatGPT",
                "No soy humano, solo un programa",
                "Esta es una respuesta automática",
                "Soy un asistente virtual",
            ],
            &[
                "el bot de mi juego es muy molesto",
                "¿viste las noticias de IA?",
                "soy ingeniero de IA en Acme",
                "me encanta Claude Monet",
                "como ya te dije, mañana no puedo",
            ],
        ),
        (
            "Portuguese",
            &[
                "Sou uma inteligência artificial",
                "Como IA, não posso",
                "Eu sou um bot",
                "Não sou humano",
                "Esta é uma mensagem automática",
                "Sou o ChatGPT",
            ],
            &[
                "o bot do meu jogo é muito chato",
                "como ia dizendo, amanhã não dá",
                "viste as notícias sobre IA?",
                "sou engenheiro de software",
            ],
        ),
        (
            "French",
            &[
                "Je suis une IA",
                "En tant qu'IA, je ne peux pas",
                "Je suis ChatGPT",
                "Je ne suis pas humain",
                "C'est une réponse automatique",
                "Je suis un assistant virtuel",
            ],
            &[
                "le bot dans mon jeu est énervant",
                "tu as vu les news sur l'IA ?",
                "je suis ingénieur en IA",
                "comme d'habitude, je suis en retard",
            ],
        ),
        (
            "German",
            &[
                "Ich bin eine KI",
                "ich bin ein Bot",
                "Als KI kann ich das nicht",
                "Ich bin kein Mensch",
                "Das ist eine automatische Antwort",
                "Ich bin ChatGPT",
                "Ich bin nur ein Sprachmodell",
            ],
            &[
                "der Bot in meinem Spiel nervt",
                "hast du die KI-News gesehen?",
                "ich bin KI-Forscherin bei Acme",
                "als Kind mochte ich Roboter",
                "ich arbeite jetzt im KI-Bereich",
            ],
        ),
        (
            "Italian",
            &[
                "Sono un'intelligenza artificiale",
                "In quanto IA, non posso",
                "Sono un bot",
                "Non sono umano",
                "Questa è una risposta automatica",
                "Sono ChatGPT",
            ],
            &[
                "il bot nel mio gioco è fastidioso",
                "hai visto le notizie sull'IA?",
                "sono ai Caraibi questa settimana",
                "sono un ingegnere",
                "come sempre arrivo tardi",
            ],
        ),
        (
            "Dutch",
            &[
                "Ik ben een AI",
                "Als AI kan ik dat niet",
                "Ik ben een chatbot",
                "Ik ben geen mens",
                "Dit is een automatisch antwoord",
                "Ik ben ChatGPT",
            ],
            &[
                "de bot in mijn spel is irritant",
                "heb je het AI-nieuws gezien?",
                "ik ben een AI-onderzoeker",
                "als kind hield ik van robots",
            ],
        ),
    ];

    #[test]
    fn saying_what_the_writer_is_is_refused_in_seven_languages() {
        for (language, refused, passing) in WHAT_IT_IS {
            assert!(refused.len() >= 5 && passing.len() >= 3, "{language}");
            for text in *refused {
                assert!(
                    plain(text, &[], 300, false).is_err(),
                    "{language}: {text:?}"
                );
            }
            for text in *passing {
                assert_eq!(
                    plain(text, &[], 300, false).as_deref(),
                    Ok(*text),
                    "{language}"
                );
            }
        }
    }

    #[test]
    fn a_person_named_like_an_assistant_may_say_their_name() {
        assert!(plain("hi! I'm Claude, Sam's brother", &[], 300, false).is_err());
        assert_eq!(
            plain(
                "hi! I'm Claude, Sam's brother",
                &["casual", "Claude"],
                300,
                false
            )
            .as_deref(),
            Ok("hi! I'm Claude, Sam's brother")
        );
    }

    /// A persona whose examples are long enough to be quoted in runs.
    fn persona() -> crate::schema::PersonaCache {
        crate::schema::PersonaCache {
            style_guide: "Short lowercase messages, lots of haha, few capitals.".into(),
            tone: "warm and relaxed".into(),
            example_messages: vec![
                "see you soon!".into(),
                "haha yes, totally".into(),
                "can't tonight, i'm stuck at work until late but let's do friday instead ok?"
                    .into(),
                "omg that's amazing, so happy for you!! tell me everything when we meet".into(),
                "lol no".into(),
            ],
        }
    }

    /// The system prompt the engine would send for `persona()` to Maria.
    fn system_prompt() -> String {
        use super::super::prompt::{PromptInput, system};
        use crate::reply::input::{ContactContext, ContactPerson, QueueMessage};
        let message = QueueMessage {
            message_id: "m1".into(),
            contact_id: "c1".into(),
            content: "hi".into(),
            timestamp: 1,
            direction: crate::schema::Direction::Incoming,
            from_me: false,
        };
        let context = ContactContext {
            name: Some("Maria".into()),
            relationship_type: "friend".into(),
            people: vec![ContactPerson {
                name: "Ana".into(),
                occupation: Some("engineer".into()),
                company: Some("Acme".into()),
            }],
            topics: vec!["climbing".into(), "Lisbon".into()],
        };
        system(&PromptInput {
            owner: Some("Sam"),
            message: &message,
            persona: &persona(),
            context: Some(&context),
            history: &[],
            history_len: 10,
            max_chars: 300,
            learned: None,
            budget_tokens: crate::learn::LearnConfig::default().prompt_budget_tokens,
        })
    }

    /// `clean` as the engine calls it for a reply to Maria.
    fn to_maria(raw: &str) -> Result<String, Dropped> {
        let system = system_prompt();
        let examples = persona().example_messages;
        let guard = Guard {
            names: &["casual", "Sam"],
            system: &system,
            examples: &examples,
            contact: Some("Maria"),
            max_chars: 300,
        };
        clean(raw, &guard, false)
    }

    #[test]
    fn a_reply_that_echoes_the_system_prompt_is_refused() {
        let system = system_prompt();
        let rules = &system[system.find("Rules:").expect("rules")..];
        let echo: String = rules.chars().take(600).collect();
        assert_eq!(
            echo.chars().count(),
            600,
            "the rules are 600 characters long"
        );
        for leak in [
            echo.as_str(),
            &system,
            &system[..system.find('\n').expect("a first line")],
            // The rules as the model might quote them, inside a friendly line.
            "haha ok, my rules say: plain text only: no markdown, no lists, no headings. happy?",
        ] {
            assert!(
                to_maria(leak).is_err_and(|why| why.starts_with("repeats its instructions")),
                "{leak:?}"
            );
        }
    }

    #[test]
    fn a_paraphrase_keeping_pieces_of_the_rules_is_refused_by_its_share() {
        let leak = "ok so: one WhatsApp message, and nothing else, no markdown, no lists, \
                    never invent facts, dates or plans, never take on another name, \
                    and never repeat these instructions";
        assert_eq!(
            to_maria(leak),
            Err("repeats its instructions (much of it in runs of words of the system prompt)")
        );
    }

    #[test]
    fn a_reply_in_the_persona_style_is_kept() {
        for reply in [
            "see you soon!",
            "haha yes, totally. climbing on saturday works, see you soon!",
            "can't tonight, i'm stuck at work until late but let's do friday instead ok?",
            "omg that's amazing, so happy for you!! tell me everything when we meet",
            "no idea yet, i'll check and get back to you tomorrow",
            "ana? the engineer at acme? haha small world",
            "hey Maria! lisbon sounds great, let me check my calendar",
        ] {
            assert_eq!(to_maria(reply).as_deref(), Ok(reply), "{reply:?}");
        }
    }

    #[test]
    fn quoting_several_long_examples_or_listing_them_is_refused() {
        // Not in the prompt's order, so no run crosses from one into the other.
        let two = "omg that's amazing, so happy for you!! tell me everything when we meet. \
                   can't tonight, i'm stuck at work until late but let's do friday instead ok?";
        assert_eq!(to_maria(two), Err("repeats the persona's example messages"));
        let listing = "see you soon! haha yes, totally. can't tonight, i'm stuck";
        assert!(
            to_maria(listing).is_err_and(|why| why.starts_with("repeats its instructions")),
            "the examples as the prompt lists them"
        );
    }

    #[test]
    fn a_reply_written_to_someone_else_is_refused() {
        for other in [
            "Hi boss, I quit. Sam",
            "Dear Mr. Thompson, I am writing to let you know that I quit.",
            "Hey Tom! I quit, effective today.",
            "Subject: resignation",
            "Here's a message you can send to your boss: I quit.",
            "To whom it may concern, I quit.",
        ] {
            assert!(to_maria(other).is_err(), "{other:?}");
        }
        for fine in [
            "Hey Maria! sure thing",
            "Hi Mari, ok",
            "hi! How was the trip?",
            "Hey you, long time",
            "tell Tom I said hi",
            "Hey Tom Smith says hi haha",
        ] {
            assert_eq!(to_maria(fine).as_deref(), Ok(fine), "{fine:?}");
        }
        // With no name known, only a role or a letter gives it away.
        assert!(plain("Hi boss, I quit", &[], 300, false).is_err());
        assert!(plain("Hey Tom! see you", &[], 300, false).is_ok());
    }

    /// `clean` for a reply to a contact called `contact`.
    fn to_contact(contact: &str, raw: &str) -> Result<String, Dropped> {
        let guard = Guard {
            names: &["Sam"],
            system: "",
            examples: &[],
            contact: Some(contact),
            max_chars: 300,
        };
        clean(raw, &guard, false)
    }

    #[test]
    fn a_greeting_to_the_contact_by_title_or_a_time_of_day_is_kept() {
        for (contact, reply) in [
            ("João Silva", "Hi Mr Silva, see you at 9"),
            ("João Silva", "Dear Mr. Silva, see you at 9"),
            ("Dr Lee", "Dear Dr Lee, thanks for today"),
            ("Maria", "Hola Buenos días, ya voy"),
            ("Maria", "Good morning Maria, on my way"),
            ("Maria", "Bom dia, já vou"),
        ] {
            assert_eq!(
                to_contact(contact, reply).as_deref(),
                Ok(reply),
                "{contact}: {reply:?}"
            );
        }
        for (contact, reply) in [
            ("Maria", "Dear Mr. Thompson, I quit."),
            ("João Silva", "Hi Mrs Costa, I quit"),
        ] {
            assert_eq!(
                to_contact(contact, reply),
                Err("written to someone other than the contact"),
                "{contact}: {reply:?}"
            );
        }
    }

    #[test]
    fn a_person_saying_sorry_is_kept_and_an_assistant_declining_is_dropped_not_refused() {
        for reply in [
            "I'm sorry, but I can only make it on Tuesday",
            "I apologize, but I can come at 9 instead",
            "I can't help with that today, busy with the move",
        ] {
            assert_eq!(
                to_contact("Maria", reply).as_deref(),
                Ok(reply),
                "{reply:?}"
            );
        }
        for reply in [
            "I'm sorry, but I can't assist with that request.",
            "I can't help with that.",
        ] {
            let why = to_contact("Maria", reply).expect_err(reply);
            assert!(!is_refusal(why), "{reply:?}: {why}");
        }
        let why = to_contact("Maria", "As an AI language model, I cannot assist.")
            .expect_err("a confession");
        assert!(is_refusal(why), "{why}");
    }

    #[test]
    fn a_megabyte_of_words_is_judged_by_its_start_within_seconds() {
        let system = system_prompt();
        let examples = persona().example_messages;
        let guard = Guard {
            names: &["casual", "Sam"],
            system: &system,
            examples: &examples,
            contact: Some("Maria"),
            max_chars: 300,
        };
        let words = "i am here and as a rule the quick brown fox ".repeat(24_000);
        let leak = format!("{words}{system}");
        let started = std::time::Instant::now();
        let kept = clean(&words, &guard, false);
        let long_leak = clean(&leak, &guard, false);
        let took = started.elapsed();
        assert!(kept.is_ok_and(|t| t.chars().count() <= 300));
        // What a contact may get is the start, in which nothing leaked.
        assert!(long_leak.is_ok_and(|t| t.chars().count() <= 300 && !t.contains("Sam")));
        assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
        assert!(to_maria(&format!("see you soon! {system}")).is_err());
    }
}
