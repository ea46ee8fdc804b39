//! One contact's learned chat made ready for replies: its exchanges, their
//! index and its style counts, and the [`Learned`] for one message.

use super::exchanges::exchanges;
use super::retrieval::Index;
use super::style::{StyleProfile, Tally};
use super::{ChatLine, Exchange, Learned};

/// A contact's chat, indexed.
#[derive(Debug, Clone, Default)]
pub struct ChatModel {
    /// The chat's exchanges, in order.
    pub exchanges: Vec<Exchange>,
    /// Their index.
    pub index: Index,
    /// The chat's style counts.
    pub tally: Tally,
    /// The chat's profile, computed once; `None` when the owner wrote no text here.
    profile: Option<StyleProfile>,
}

impl ChatModel {
    /// Builds the model of a chat (oldest line first).
    pub fn new(lines: &[ChatLine]) -> Self {
        let exchanges = exchanges(lines);
        let index = Index::new(&exchanges);
        let mut tally = Tally::default();
        tally.add_chat(lines);
        let profile = Some(tally.profile()).filter(|p| p.samples > 0);
        Self {
            exchanges,
            index,
            tally,
            profile,
        }
    }

    /// The chat's own profile, when the owner wrote text in it.
    pub fn profile(&self) -> Option<&StyleProfile> {
        self.profile.as_ref()
    }

    /// The `k` exchanges most like `message`, best first, each with its
    /// similarity; those that share nothing with it are left out.
    pub fn examples(&self, message: &str, k: usize) -> Vec<(Exchange, f32)> {
        if k == 0 {
            return Vec::new();
        }
        self.index
            .search(message, k)
            .into_iter()
            .filter(|h| h.similarity > 0.0)
            .filter_map(|h| Some((self.exchanges.get(h.exchange)?.clone(), h.similarity)))
            .collect()
    }

    /// What bears on answering `message`: the `k` most similar exchanges and this
    /// chat's profile, or `overall` when the chat has no text from the owner.
    pub fn learned_for(&self, message: &str, k: usize, overall: Option<&StyleProfile>) -> Learned {
        let (profile, from_contact) = match &self.profile {
            Some(own) => (Some(own.clone()), true),
            None => (overall.cloned(), false),
        };
        Learned {
            profile,
            from_contact,
            examples: self.examples(message, k),
            ..Learned::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::fixtures::line;

    fn chat() -> Vec<ChatLine> {
        vec![
            line(1_000, false, "are you coming to the barbecue on saturday?"),
            line(61_000, true, "yes! bringing the grill tongs"),
            line(120_000, false, "did you feed the cat this morning"),
            line(180_000, true, "oops no, doing it now"),
        ]
    }

    #[test]
    fn the_most_similar_exchange_comes_first_with_this_chats_profile() {
        let model = ChatModel::new(&chat());
        assert_eq!(model.exchanges.len(), 2);
        let overall = StyleProfile {
            samples: 999,
            ..StyleProfile::default()
        };
        let l = model.learned_for("barbecue saturday, coming?", 4, Some(&overall));
        assert!(l.from_contact);
        let profile = l.profile.expect("this chat's profile");
        assert_eq!(profile.samples, 2, "the owner's two messages here");
        let (best, sim) = &l.examples[0];
        assert_eq!(best.me, "yes! bringing the grill tongs");
        assert!(*sim > 0.0 && *sim <= 1.0, "{sim}");
        assert!(
            l.examples
                .iter()
                .all(|(e, _)| e.me != "oops no, doing it now"),
            "an exchange sharing no word is left out: {:?}",
            l.examples
        );
    }

    #[test]
    fn a_chat_without_owner_text_takes_the_overall_profile() {
        let only_them = [line(1, false, "hello there"), line(2, false, "anyone?")];
        let model = ChatModel::new(&only_them);
        let overall = StyleProfile {
            samples: 7,
            ..StyleProfile::default()
        };
        let l = model.learned_for("hello", 3, Some(&overall));
        assert!(!l.from_contact);
        assert_eq!(l.profile, Some(overall));
        assert!(l.examples.is_empty());
        assert!(model.learned_for("hello", 3, None).profile.is_none());
        assert!(ChatModel::new(&chat()).examples("barbecue", 0).is_empty());
    }
}
