//! A WhatsApp message to a `QUEUE:messages` entry, or the reason it is skipped.
//! Pure: the library's message types in, plain data out.

use whatsapp_rust::prelude::{MessageExt as _, MessageInfo, wa};
use whatsapp_rust::wacore_binary::JidExt as _;

use super::contact::{ContactHasher, Person};
use super::link::Inbound;
use crate::schema::{Direction, QueueMessage};

/// What the mapping may let through.
#[derive(Debug, Clone, Copy, Default)]
pub struct MapOptions {
    /// Group chats become contacts (the group is the contact).
    pub groups: bool,
}

/// Why a message does not enter the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// A group chat (groups are off).
    Group,
    /// A status update.
    Status,
    /// A channel (newsletter) post.
    Newsletter,
    /// A reaction to a message.
    Reaction,
    /// Nothing a person wrote (protocol messages, key distribution, edits, deletions).
    NoContent,
    /// Not addressed to one person (a broadcast list, an unknown address).
    NotAPerson,
}

/// Maps one message; `None`-free: every message is an entry or a [`Skip`].
pub fn map(
    info: &MessageInfo,
    message: &wa::Message,
    hasher: &ContactHasher,
    opts: MapOptions,
) -> Result<Inbound, Skip> {
    let source = &info.source;
    let chat = &source.chat;
    if chat.is_status_broadcast() {
        return Err(Skip::Status);
    }
    if chat.is_newsletter() {
        return Err(Skip::Newsletter);
    }
    let base = message.get_base_message();
    if base.reaction_message.is_set() || base.enc_reaction_message.is_set() {
        return Err(Skip::Reaction);
    }
    let person = if source.is_group || chat.is_group() {
        if !opts.groups {
            return Err(Skip::Group);
        }
        Person::Group(chat.user.to_string())
    } else {
        // The other person is the chat; its other form (phone or LID) rides along
        // as sender_alt on incoming messages and recipient_alt on our own.
        let alt = if source.is_from_me {
            source.recipient_alt.as_ref()
        } else {
            source.sender_alt.as_ref()
        };
        let of = |j: &whatsapp_rust::Jid| Person::from_address(&j.user, j.server.as_str());
        Person::prefer_phone(Some(chat).and_then(of), alt.and_then(of)).ok_or(Skip::NotAPerson)?
    };
    let content = content(base).ok_or(Skip::NoContent)?;
    let contact_id = hasher.id(&person);
    let push_name =
        (!source.is_from_me && !info.push_name.is_empty()).then(|| info.push_name.clone());
    Ok(Inbound {
        message: QueueMessage {
            message_id: super::message_id(&contact_id, &info.id),
            contact_id,
            content,
            timestamp: info.timestamp.timestamp_millis(),
            direction: if source.is_from_me {
                Direction::Outgoing
            } else {
                Direction::Incoming
            },
            from_me: source.is_from_me,
        },
        address: person.address(),
        push_name,
    })
}

/// The text of a message: its text, its caption after a placeholder, or a placeholder.
pub fn content(base: &wa::Message) -> Option<String> {
    if let Some(text) = base.text_content() {
        return Some(text.to_owned());
    }
    let with_caption = |label: &str, caption: &Option<String>| match caption.as_deref() {
        Some(c) if !c.trim().is_empty() => format!("[{label}] {c}"),
        _ => format!("[{label}]"),
    };
    if let Some(m) = base.image_message.as_option() {
        return Some(with_caption("photo", &m.caption));
    }
    if let Some(m) = base.video_message.as_option() {
        let label = if m.gif_playback == Some(true) {
            "GIF"
        } else {
            "video"
        };
        return Some(with_caption(label, &m.caption));
    }
    if let Some(m) = base.audio_message.as_option() {
        let secs = m.seconds.unwrap_or(0);
        let kind = if m.ptt == Some(true) {
            "voice note"
        } else {
            "audio"
        };
        return Some(format!("[{kind} {}:{:02}]", secs / 60, secs % 60));
    }
    if let Some(m) = base.document_message.as_option() {
        return Some(with_caption("document", &m.caption));
    }
    if base.sticker_message.is_set() {
        return Some("[sticker]".into());
    }
    if base.location_message.is_set() || base.live_location_message.is_set() {
        return Some("[location]".into());
    }
    if base.contact_message.is_set() || base.contacts_array_message.is_set() {
        return Some("[contact card]".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use whatsapp_rust::Jid;
    use whatsapp_rust::prelude::MessageField;
    use whatsapp_rust::types::message::MessageSource;

    use super::*;

    const PHONE: &str = "15551234567";
    const LID: &str = "100000012345678";

    fn hasher() -> ContactHasher {
        ContactHasher::new([3; 32])
    }

    fn info(id: &str, source: MessageSource) -> MessageInfo {
        MessageInfo {
            source,
            id: id.into(),
            push_name: "Bob".into(),
            ..Default::default()
        }
    }

    fn from(chat: Jid) -> MessageSource {
        MessageSource {
            sender: chat.clone(),
            chat,
            ..Default::default()
        }
    }

    fn text(t: &str) -> wa::Message {
        wa::Message {
            conversation: Some(t.into()),
            ..Default::default()
        }
    }

    fn run(source: MessageSource, message: &wa::Message) -> Result<Inbound, Skip> {
        map(
            &info("3EB0A1", source),
            message,
            &hasher(),
            MapOptions::default(),
        )
    }

    #[test]
    fn plain_and_extended_text_become_the_content() {
        let m = run(from(Jid::pn(PHONE)), &text("hi there")).expect("mapped");
        assert_eq!(m.message.content, "hi there");
        assert_eq!(m.message.direction, Direction::Incoming);
        assert!(!m.message.from_me);
        assert_eq!(m.push_name.as_deref(), Some("Bob"));
        assert_eq!(m.address, format!("{PHONE}@s.whatsapp.net"));
        assert!(!m.message.contact_id.contains(PHONE));
        let ext = wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("see https://example.com".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            run(from(Jid::pn(PHONE)), &ext)
                .expect("mapped")
                .message
                .content,
            "see https://example.com"
        );
    }

    #[test]
    fn media_become_placeholders_with_their_captions() {
        let photo = wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                caption: Some("the view".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(content(&photo).as_deref(), Some("[photo] the view"));
        let voice = wa::Message {
            audio_message: MessageField::some(wa::message::AudioMessage {
                ptt: Some(true),
                seconds: Some(12),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(content(&voice).as_deref(), Some("[voice note 0:12]"));
        let song = wa::Message {
            audio_message: MessageField::some(wa::message::AudioMessage {
                seconds: Some(185),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(content(&song).as_deref(), Some("[audio 3:05]"));
        let sticker = wa::Message {
            sticker_message: MessageField::some(Default::default()),
            ..Default::default()
        };
        assert_eq!(content(&sticker).as_deref(), Some("[sticker]"));
        let video = wa::Message {
            video_message: MessageField::some(Default::default()),
            ..Default::default()
        };
        assert_eq!(content(&video).as_deref(), Some("[video]"));
        assert_eq!(content(&wa::Message::default()), None);
    }

    #[test]
    fn a_message_typed_on_the_phone_is_outgoing_and_from_me() {
        let source = MessageSource {
            chat: Jid::pn(PHONE),
            sender: Jid::pn("15559990000"),
            is_from_me: true,
            recipient: Some(Jid::pn(PHONE)),
            ..Default::default()
        };
        let m = run(source, &text("on my way")).expect("mapped");
        assert_eq!(m.message.direction, Direction::Outgoing);
        assert!(m.message.from_me);
        assert_eq!(m.push_name, None, "our own name is not the contact's");
        let incoming = run(from(Jid::pn(PHONE)), &text("x")).expect("mapped");
        assert_eq!(
            m.message.contact_id, incoming.message.contact_id,
            "the chat is the contact"
        );
    }

    #[test]
    fn lid_and_phone_forms_of_one_person_get_one_id() {
        let by_phone = run(from(Jid::pn(PHONE)), &text("a")).expect("mapped");
        let by_lid = run(
            MessageSource {
                sender_alt: Some(Jid::pn(PHONE)),
                ..from(Jid::lid(LID))
            },
            &text("b"),
        )
        .expect("mapped");
        assert_eq!(by_phone.message.contact_id, by_lid.message.contact_id);
        assert_eq!(by_lid.address, format!("{PHONE}@s.whatsapp.net"));
        let own = MessageSource {
            chat: Jid::lid(LID),
            sender: Jid::pn("15559990000"),
            is_from_me: true,
            recipient_alt: Some(Jid::pn(PHONE)),
            ..Default::default()
        };
        assert_eq!(
            run(own, &text("c")).expect("mapped").message.contact_id,
            by_phone.message.contact_id
        );
        let lid_only = run(from(Jid::lid(LID)), &text("d")).expect("mapped");
        assert_ne!(lid_only.message.contact_id, by_phone.message.contact_id);
        assert_eq!(lid_only.address, format!("{LID}@lid"));
    }

    #[test]
    fn groups_status_newsletters_and_reactions_are_skipped() {
        let group = MessageSource {
            chat: Jid::group("120363000000000001"),
            sender: Jid::pn(PHONE),
            is_group: true,
            ..Default::default()
        };
        assert_eq!(run(group.clone(), &text("hi all")), Err(Skip::Group));
        let with_groups = map(
            &info("g1", group),
            &text("hi all"),
            &hasher(),
            MapOptions { groups: true },
        )
        .expect("groups on");
        assert_eq!(with_groups.address, "120363000000000001@g.us");
        assert_eq!(
            run(from(Jid::status_broadcast()), &text("story")),
            Err(Skip::Status)
        );
        assert_eq!(
            run(from(Jid::newsletter("1200")), &text("post")),
            Err(Skip::Newsletter)
        );
        let reaction = wa::Message {
            reaction_message: MessageField::some(wa::message::ReactionMessage {
                text: Some("👍".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(run(from(Jid::pn(PHONE)), &reaction), Err(Skip::Reaction));
        assert_eq!(
            run(from(Jid::pn(PHONE)), &wa::Message::default()),
            Err(Skip::NoContent)
        );
    }

    #[test]
    fn message_ids_are_unique_across_contacts_and_messages() {
        let mut seen = HashSet::new();
        for (chat, id) in [
            (PHONE, "A"),
            (PHONE, "B"),
            ("15550000001", "A"),
            ("15550000001", "B"),
        ] {
            let m = map(
                &info(id, from(Jid::pn(chat))),
                &text("x"),
                &hasher(),
                MapOptions::default(),
            )
            .expect("mapped");
            assert!(crate::schema::check_id(&m.message.message_id).is_ok());
            assert!(seen.insert(m.message.message_id));
        }
    }
}
