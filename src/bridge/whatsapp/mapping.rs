//! A WhatsApp message to a `QUEUE:messages` entry, or the reason it is skipped.
//! Pure: the library's message types in, plain data out.

use whatsapp_rust::prelude::{MessageExt as _, MessageInfo, wa};
use whatsapp_rust::wacore_binary::JidExt as _;

use super::contact::{ContactHasher, Person};
use super::link::{Inbound, MediaLocation, MediaOffer};
use crate::schema::media::{self, MediaKind};
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
    // A voice note, audio or photo is named by its entry's `mediaType`: its
    // content is the caption, never a placeholder the worker could answer.
    let (media, content) = match media_of(message) {
        Some((offer, caption)) => (Some(offer), caption),
        None => (None, content(base).ok_or(Skip::NoContent)?),
    };
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
        media,
    })
}

/// WhatsApp's format of voice notes, the type an audio message without a
/// valid one of its own is named with.
const FALLBACK_AUDIO: &str = "audio/ogg";
/// WhatsApp's format of photos, the type a photo without a valid one of its
/// own is named with.
const FALLBACK_IMAGE: &str = "image/jpeg";

/// The voice note, audio or photo a message is (the media [`content`] shows a
/// placeholder for), with its caption (empty when none): every one is named in
/// its entry, fetched or not. It has a location only when the gateway may
/// fetch it: WhatsApp said what a download needs and gave a MIME type of its
/// kind, and it is not view-once (the sender meant it to be seen once, on the phone).
pub fn media_of(message: &wa::Message) -> Option<(MediaOffer, String)> {
    let base = message.get_base_message();
    if base.text_content().is_some() {
        return None;
    }
    let fetchable = !message.is_view_once();
    if let Some(m) = base.image_message.as_option() {
        let at = location(
            &m.direct_path,
            &m.media_key,
            &m.file_sha256,
            &m.file_enc_sha256,
        );
        let offer = offer_of(MediaKind::Photo, m.mimetype.as_deref(), at, fetchable);
        let offer = MediaOffer {
            file_length: m.file_length,
            ..offer
        };
        return Some((offer, m.caption.clone().unwrap_or_default()));
    }
    if base.video_message.is_set() {
        return None;
    }
    let m = base.audio_message.as_option()?;
    let at = location(
        &m.direct_path,
        &m.media_key,
        &m.file_sha256,
        &m.file_enc_sha256,
    );
    let offer = offer_of(MediaKind::Voice, m.mimetype.as_deref(), at, fetchable);
    let offer = MediaOffer {
        seconds: m.seconds,
        file_length: m.file_length,
        ..offer
    };
    Some((offer, String::new()))
}

/// The offer of a medium of `kind`: named by its MIME type (the kind's usual
/// one when WhatsApp gave none of the kind), fetchable from `at` only when
/// `fetchable` and the type was given.
fn offer_of(
    kind: MediaKind,
    mimetype: Option<&str>,
    at: Option<MediaLocation>,
    fetchable: bool,
) -> MediaOffer {
    let mime = mime_of(kind, mimetype);
    let location = at.filter(|_| fetchable && mime.is_some());
    let fallback = match kind {
        MediaKind::Voice => FALLBACK_AUDIO,
        _ => FALLBACK_IMAGE,
    };
    MediaOffer {
        kind,
        mime: mime.unwrap_or_else(|| fallback.to_owned()),
        seconds: None,
        file_length: None,
        location,
    }
}

/// `mime` when it is a valid MIME type of `kind` (an entry with any other would be refused).
fn mime_of(kind: MediaKind, mime: Option<&str>) -> Option<String> {
    let mime = mime?;
    (media::check_media_type(mime).is_ok() && MediaKind::of_mime(mime) == Some(kind))
        .then(|| mime.to_owned())
}

/// Where the media is, when WhatsApp gave all a download needs.
fn location(
    direct_path: &Option<String>,
    media_key: &Option<Vec<u8>>,
    file_sha256: &Option<Vec<u8>>,
    file_enc_sha256: &Option<Vec<u8>>,
) -> Option<MediaLocation> {
    let present = |v: &Option<Vec<u8>>| v.clone().filter(|b| !b.is_empty());
    Some(MediaLocation {
        direct_path: direct_path.clone().filter(|p| !p.is_empty())?,
        media_key: present(media_key)?,
        file_sha256: present(file_sha256)?,
        file_enc_sha256: present(file_enc_sha256)?,
    })
}

/// The text of a message: its text, its caption after a placeholder, or a
/// placeholder. [`map`] writes the placeholder only for media other than
/// voice notes, audio and photos (those are named by [`media_of`]).
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

    fn voice_note(mime: Option<&str>) -> wa::message::AudioMessage {
        wa::message::AudioMessage {
            ptt: Some(true),
            seconds: Some(12),
            mimetype: mime.map(str::to_owned),
            file_length: Some(4_000),
            direct_path: Some("/v/t62/abc".into()),
            media_key: Some(vec![1; 32]),
            file_sha256: Some(vec![2; 32]),
            file_enc_sha256: Some(vec![3; 32]),
            ..Default::default()
        }
    }

    fn with_audio(m: wa::message::AudioMessage) -> wa::Message {
        wa::Message {
            audio_message: MessageField::some(m),
            ..Default::default()
        }
    }

    fn photo(caption: Option<&str>) -> wa::Message {
        wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                caption: caption.map(str::to_owned),
                mimetype: Some("image/jpeg".into()),
                file_length: Some(90_000),
                direct_path: Some("/v/t62/img".into()),
                media_key: Some(vec![1; 32]),
                file_sha256: Some(vec![2; 32]),
                file_enc_sha256: Some(vec![3; 32]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn voice_notes_and_photos_are_named_with_their_caption_never_a_placeholder() {
        let voice = run(
            from(Jid::pn(PHONE)),
            &with_audio(voice_note(Some("audio/ogg; codecs=opus"))),
        )
        .expect("mapped");
        assert_eq!(voice.message.content, "", "no placeholder to answer");
        let said = voice.media.expect("named");
        assert_eq!(said.kind, MediaKind::Voice);
        assert_eq!(said.mime, "audio/ogg; codecs=opus");
        assert_eq!(said.seconds, Some(12));
        assert_eq!(said.file_length, Some(4_000));
        let at = said.location.as_ref().expect("fetchable");
        assert_eq!(at.direct_path, "/v/t62/abc");
        assert_eq!(at.media_key, vec![1; 32]);
        assert!(
            !format!("{said:?}").contains("abc"),
            "the location stays out of logs"
        );

        let shown = run(from(Jid::pn(PHONE)), &photo(Some("look at my new car!"))).expect("mapped");
        assert_eq!(shown.message.content, "look at my new car!");
        let seen = shown.media.expect("named");
        assert_eq!(seen.kind, MediaKind::Photo);
        assert_eq!(seen.mime, "image/jpeg");
        assert_eq!(seen.seconds, None);
        assert!(seen.location.is_some());
        let bare = run(from(Jid::pn(PHONE)), &photo(None)).expect("mapped");
        assert_eq!(bare.message.content, "");
        assert!(bare.media.is_some());

        let song = wa::message::AudioMessage {
            ptt: None,
            seconds: Some(185),
            mimetype: Some("audio/mpeg".into()),
            ..voice_note(None)
        };
        let heard = run(from(Jid::pn(PHONE)), &with_audio(song)).expect("mapped");
        assert_eq!(heard.message.content, "");
        let heard = heard.media.expect("named");
        assert_eq!((heard.kind, heard.seconds), (MediaKind::Voice, Some(185)));
        assert_eq!(heard.mime, "audio/mpeg");
    }

    #[test]
    fn other_media_keep_their_placeholder_and_are_not_named() {
        assert_eq!(media_of(&text("hi")), None);
        let video = wa::Message {
            video_message: MessageField::some(wa::message::VideoMessage {
                mimetype: Some("video/mp4".into()),
                direct_path: Some("/v".into()),
                caption: Some("watch".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(media_of(&video), None);
        let mapped = run(from(Jid::pn(PHONE)), &video).expect("mapped");
        assert_eq!(mapped.message.content, "[video] watch");
        assert_eq!(mapped.media, None);
        for (m, placeholder) in [
            (
                wa::Message {
                    document_message: MessageField::some(Default::default()),
                    ..Default::default()
                },
                "[document]",
            ),
            (
                wa::Message {
                    sticker_message: MessageField::some(Default::default()),
                    ..Default::default()
                },
                "[sticker]",
            ),
        ] {
            assert_eq!(media_of(&m), None);
            let mapped = run(from(Jid::pn(PHONE)), &m).expect("mapped");
            assert_eq!(mapped.message.content, placeholder);
            assert_eq!(mapped.media, None);
        }
    }

    #[test]
    fn media_that_cannot_be_fetched_is_named_all_the_same() {
        for mime in [None, Some("video/mp4"), Some("audio"), Some("audio/ogg\n")] {
            let m = run(from(Jid::pn(PHONE)), &with_audio(voice_note(mime))).expect("mapped");
            assert_eq!(m.message.content, "", "{mime:?}");
            let named = m.media.expect("named");
            assert_eq!(named.mime, "audio/ogg", "WhatsApp's format for {mime:?}");
            assert_eq!(named.seconds, Some(12));
            assert_eq!(named.location, None, "{mime:?}: not fetched");
        }
        let no_key = wa::message::AudioMessage {
            media_key: None,
            ..voice_note(Some("audio/ogg"))
        };
        let view_once = wa::message::AudioMessage {
            view_once: Some(true),
            ..voice_note(Some("audio/ogg"))
        };
        for audio in [no_key, view_once] {
            let (named, caption) = media_of(&with_audio(audio)).expect("named");
            assert_eq!(caption, "");
            assert_eq!(named.mime, "audio/ogg");
            assert_eq!(named.location, None);
        }
        let wrapped = wa::Message {
            view_once_message: MessageField::some(wa::message::FutureProofMessage {
                message: MessageField::some(photo(Some("once"))),
            }),
            ..Default::default()
        };
        let m = run(from(Jid::pn(PHONE)), &wrapped).expect("mapped");
        assert_eq!(m.message.content, "once");
        let named = m.media.expect("named");
        assert_eq!(named.kind, MediaKind::Photo);
        assert_eq!(named.location, None, "view-once is never fetched");
        let odd_photo = wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                mimetype: Some("application/pdf".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (named, _) = media_of(&odd_photo).expect("named");
        assert_eq!(
            (named.kind, named.mime.as_str()),
            (MediaKind::Photo, "image/jpeg")
        );
        assert_eq!(named.location, None);
    }

    #[test]
    fn the_persons_own_voice_note_is_named_with_no_placeholder() {
        let source = MessageSource {
            chat: Jid::pn(PHONE),
            sender: Jid::pn("15559990000"),
            is_from_me: true,
            recipient: Some(Jid::pn(PHONE)),
            ..Default::default()
        };
        let m = run(
            source,
            &with_audio(voice_note(Some("audio/ogg; codecs=opus"))),
        )
        .expect("mapped");
        assert!(m.message.from_me);
        assert_eq!(m.message.content, "");
        assert_eq!(
            m.media.map(|o| o.mime).as_deref(),
            Some("audio/ogg; codecs=opus")
        );
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
