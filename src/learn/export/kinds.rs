//! What an authored line of an export holds, in the phone's language: a text,
//! a media placeholder, a deleted message, or an event WhatsApp wrote under a
//! name (iOS marks those with U+200E); and the "edited" marker to strip.

use crate::learn::LineKind;

/// What a message turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A message its author wrote (text, media or deleted).
    Message(LineKind),
    /// An event WhatsApp wrote (encryption notice, missed call...).
    System,
}

/// How the words of Android's `<Media omitted>` start, in each language
/// (lowercase; a word of the placeholder must start with one).
const OMIT_STEMS: &[&str] = &[
    "omitted",
    "omis",
    "omitid",
    "ausgeschlossen",
    "weggelassen",
    "oculta",
    "oculto",
    "weggelaten",
    "omess",
    "pois",
    "dihilangkan",
    "edilmedi",
];

/// iOS `<attached: file>` in each language (compared ignoring ASCII case).
const ATTACHED: &[&str] = &[
    "attached:",
    "adjunto:",
    "anexado:",
    "anexo:",
    "anhang:",
    "pièce jointe :",
    "pièce jointe:",
    "allegato:",
    "bijlage:",
    "bijgevoegd:",
    "liite:",
];

/// Android `file.jpg (file attached)` in each language.
const FILE_ATTACHED: &[&str] = &[
    "(file attached)",
    "(archivo adjunto)",
    "(arquivo anexado)",
    "(ficheiro anexado)",
    "(Datei angehängt)",
    "(fichier joint)",
    "(file allegato)",
    "(bestand bijgevoegd)",
    "(tiedosto liitetty)",
];

/// iOS `image omitted` and the like in each language (the whole line,
/// ignoring ASCII case).
const IOS_OMITTED: &[&str] = &[
    "image omitted",
    "video omitted",
    "audio omitted",
    "sticker omitted",
    "GIF omitted",
    "Contact card omitted",
    "video note omitted",
    "imagen omitida",
    "video omitido",
    "audio omitido",
    "sticker omitido",
    "GIF omitido",
    "tarjeta de contacto omitida",
    "imagem ocultada",
    "vídeo ocultado",
    "áudio ocultado",
    "figurinha omitida",
    "GIF ocultado",
    "cartão de contato omitido",
    "Bild weggelassen",
    "Video weggelassen",
    "Audio weggelassen",
    "Sticker weggelassen",
    "GIF weggelassen",
    "Kontaktkarte ausgelassen",
    "image absente",
    "vidéo absente",
    "audio omis",
    "autocollant omis",
    "GIF retiré",
    "fiche contact omise",
    "immagine omessa",
    "video omesso",
    "audio omesso",
    "sticker omesso",
    "GIF omessa",
    "scheda contatto omessa",
    "afbeelding weggelaten",
    "video weggelaten",
    "audio weggelaten",
    "sticker weggelaten",
    "GIF weggelaten",
    "contactkaart weggelaten",
    "kuva jätetty pois",
    "video jätetty pois",
    "ääni jätetty pois",
    "tarra jätetty pois",
    "GIF jätetty pois",
];

/// iOS `report.pdf • 3 pages document omitted`: the end of the line.
const IOS_DOCUMENT: &[&str] = &[
    "document omitted",
    "documento omitido",
    "documento ocultado",
    "Dokument weggelassen",
    "document omis",
    "documento omesso",
    "document weggelaten",
    "asiakirja jätetty pois",
];

/// Shared places and polls: no text of the author's to learn from.
const SHARED: &[&str] = &[
    "location: ",
    "ubicación: ",
    "localização: ",
    "Standort: ",
    "POLL:",
    "ENCUESTA:",
    "ENQUETE:",
    "UMFRAGE:",
    "SONDAGE:",
    "SONDAGGIO:",
];

/// A deleted message, without its final period.
const DELETED: &[&str] = &[
    "This message was deleted",
    "You deleted this message",
    "Se eliminó este mensaje",
    "Eliminaste este mensaje",
    "Este mensaje fue eliminado",
    "Esta mensagem foi apagada",
    "Você apagou esta mensagem",
    "Mensagem apagada",
    "Apagou esta mensagem",
    "Esta mensagem foi eliminada",
    "Eliminou esta mensagem",
    "Diese Nachricht wurde gelöscht",
    "Du hast diese Nachricht gelöscht",
    "Ce message a été supprimé",
    "Vous avez supprimé ce message",
    "Questo messaggio è stato eliminato",
    "Hai eliminato questo messaggio",
    "Dit bericht is verwijderd",
    "Je hebt dit bericht verwijderd",
    "U heeft dit bericht verwijderd",
    "Tämä viesti poistettiin",
    "Poistit tämän viestin",
];

/// The "edited" marker at the end of a text, inside `<...>`, without a final period.
const EDITED: &[&str] = &[
    "This message was edited",
    "Se editó este mensaje",
    "Mensaje editado",
    "Este mensaje fue editado",
    "Mensagem editada",
    "Esta mensagem foi editada",
    "Diese Nachricht wurde bearbeitet",
    "Nachricht bearbeitet",
    "Ce message a été modifié",
    "Message modifié",
    "Questo messaggio è stato modificato",
    "Messaggio modificato",
    "Dit bericht is bewerkt",
    "Bericht bewerkt",
    "Tätä viestiä on muokattu",
    "Viestiä muokattu",
];

/// Events WhatsApp writes under a name (older iOS exports, without the mark).
const SYSTEM_TEXT: &[&str] = &[
    "Messages and calls are end-to-end encrypted",
    "Messages to this chat and calls are now secured with end-to-end encryption",
    "Messages to this group are now secured with end-to-end encryption",
    "Missed voice call",
    "Missed video call",
    "Missed group voice call",
    "Missed group video call",
    "Waiting for this message",
    "Los mensajes y las llamadas están cifrados de extremo a extremo",
    "Llamada perdida",
    "Llamada de voz perdida",
    "Videollamada perdida",
    "Esperando este mensaje",
    "As mensagens e as chamadas são protegidas com a criptografia de ponta a ponta",
    "Chamada de voz perdida",
    "Chamada de vídeo perdida",
    "Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt",
    "Verpasster Sprachanruf",
    "Verpasster Videoanruf",
    "Les messages et les appels sont chiffrés de bout en bout",
    "Appel vocal manqué",
    "Appel vidéo manqué",
    "I messaggi e le chiamate sono crittografati end-to-end",
    "Chiamata vocale persa",
    "Videochiamata persa",
    "Berichten en oproepen worden end-to-end versleuteld",
    "Gemiste spraakoproep",
    "Gemiste video-oproep",
    "Viestit ja puhelut ovat päästä päähän salattuja",
    "Vastaamaton puhelu",
    "Vastaamaton äänipuhelu",
    "Vastaamaton videopuhelu",
];

/// Group events whose text holds `: ` (a subject, a description), so that
/// what reads as an author is the event.
const SYSTEM_AUTHOR: &[&str] = &[
    " changed the subject",
    " created group",
    " changed the group description",
    " changed this group's",
    " cambió el asunto",
    " creó el grupo",
    " cambió la descripción",
    " mudou o assunto",
    " criou o grupo",
    " mudou a descrição",
    " hat den Betreff",
    " hat die Gruppe",
    " hat die Gruppenbeschreibung",
    " a modifié le sujet",
    " a créé le groupe",
    " a modifié la description",
    " ha cambiato l'oggetto",
    " ha creato il gruppo",
    " ha cambiato la descrizione",
    " heeft de groepsnaam",
    " heeft groep",
    " heeft de groepsbeschrijving",
    " vaihtoi aiheeksi",
    " loi ryhmän",
    " muutti ryhmän",
];

/// `s` starts with `prefix`, ignoring ASCII case.
fn starts_with_nocase(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// `s` ends with `suffix`, ignoring ASCII case.
fn ends_with_nocase(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// What an authored "name" really is: the start of a group event.
pub fn author_is_system(author: &str) -> bool {
    author.len() > 12 && SYSTEM_AUTHOR.iter().any(|p| author.contains(p))
}

/// Where a media placeholder on the first line ends, when it is one: the
/// caption starts there (`None`: not media).
fn media_end(first: &str) -> Option<usize> {
    let line = first.trim_end();
    if let Some(inner) = line.strip_prefix('<') {
        if let Some(attached) = ATTACHED.iter().find(|p| starts_with_nocase(inner, p)) {
            let close = inner[attached.len()..].find('>')?;
            return Some(1 + attached.len() + close + 1);
        }
        let inner = inner.strip_suffix('>')?;
        let lower = inner.to_lowercase();
        let omitted = lower
            .split_whitespace()
            .any(|word| OMIT_STEMS.iter().any(|stem| word.starts_with(stem)));
        return omitted.then_some(first.len());
    }
    let whole = FILE_ATTACHED.iter().any(|s| line.ends_with(s))
        || IOS_OMITTED.iter().any(|s| line.eq_ignore_ascii_case(s))
        || IOS_DOCUMENT.iter().any(|s| ends_with_nocase(line, s));
    whole.then_some(first.len())
}

fn is_shared(text: &str) -> bool {
    SHARED.iter().any(|p| starts_with_nocase(text, p))
}

fn is_deleted(text: &str) -> bool {
    let t = text.trim();
    let t = t.strip_suffix('.').unwrap_or(t);
    t.len() <= 64 && DELETED.contains(&t)
}

fn is_system(text: &str) -> bool {
    SYSTEM_TEXT.iter().any(|p| text.starts_with(p))
}

/// Removes the "edited" marker from the end of a text.
fn strip_edited(text: &mut String) {
    let trimmed = text.trim_end();
    let Some(body) = trimmed.strip_suffix('>') else {
        return;
    };
    let Some(open) = body.rfind('<') else {
        return;
    };
    let inner = &body[open + 1..];
    let inner = inner.strip_suffix('.').unwrap_or(inner);
    if EDITED.contains(&inner) {
        let keep = text[..open].trim_end().len();
        text.truncate(keep);
    }
}

/// Classifies a message's text (continuation lines joined with `\n`) and
/// leaves in `text` what is kept: the caption of media, nothing of a deleted
/// message, the text without its "edited" marker. `marked`: the text began
/// with a bidi mark, as iOS writes its events and placeholders.
pub fn classify(text: &mut String, marked: bool) -> Kind {
    let first_len = text.find('\n').unwrap_or(text.len());
    if let Some(end) = media_end(&text[..first_len]) {
        let caption = text[end..].trim().to_owned();
        *text = caption;
        return Kind::Message(LineKind::Media);
    }
    if is_shared(text) {
        text.clear();
        return Kind::Message(LineKind::Media);
    }
    if is_deleted(text) {
        text.clear();
        return Kind::Message(LineKind::Deleted);
    }
    if marked || is_system(text) {
        return Kind::System;
    }
    strip_edited(text);
    let keep = text.trim_end().len();
    text.truncate(keep);
    Kind::Message(LineKind::Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str, marked: bool) -> (Kind, String) {
        let mut t = text.to_owned();
        let k = classify(&mut t, marked);
        (k, t)
    }

    const MEDIA: Kind = Kind::Message(LineKind::Media);
    const DELETED_KIND: Kind = Kind::Message(LineKind::Deleted);
    const TEXT: Kind = Kind::Message(LineKind::Text);

    #[test]
    fn media_placeholders_in_each_language_are_media_without_text() {
        for placeholder in [
            "<Media omitted>",
            "<Médias omis>",
            "<Medien ausgeschlossen>",
            "<Multimedia omitido>",
            "<Mídia oculta>",
            "<Media weggelaten>",
            "<Media omessi>",
            "<Media jätettiin pois>",
            "image omitted",
            "video omitted",
            "audio omitted",
            "sticker omitted",
            "GIF omitted",
            "document omitted",
            "Contact card omitted",
            "Notes.pdf • 3 pages document omitted",
            "imagen omitida",
            "imagem ocultada",
            "Bild weggelassen",
            "image absente",
            "immagine omessa",
            "afbeelding weggelaten",
            "kuva jätetty pois",
            "<attached: 00000012-PHOTO-2020-01-15-02-22-56.jpg>",
            "<adjunto: 00000013-AUDIO-2020-01-15-02-23-00.opus>",
            "<anexado: 00000014-VIDEO-2020-01-15-02-24-00.mp4>",
            "<Anhang: 00000015-PHOTO-2020-01-15-02-25-00.jpg>",
            "<pièce jointe : 00000016-PHOTO-2020-01-15-02-25-00.jpg>",
            "<allegato: 00000017-PHOTO-2020-01-15-02-25-00.jpg>",
            "IMG-20200115-WA0001.jpg (file attached)",
            "IMG-20200115-WA0001.jpg (archivo adjunto)",
            "IMG-20200115-WA0001.jpg (arquivo anexado)",
            "IMG-20200115-WA0001.jpg (Datei angehängt)",
            "IMG-20200115-WA0001.jpg (fichier joint)",
            "IMG-20200115-WA0001.jpg (file allegato)",
            "IMG-20200115-WA0001.jpg (bestand bijgevoegd)",
            "IMG-20200115-WA0001.jpg (tiedosto liitetty)",
            "location: https://maps.google.com/?q=1,2",
            "POLL:\nLunch?\nOPTION: yes (1 vote)",
        ] {
            assert_eq!(
                kind(placeholder, false),
                (MEDIA, String::new()),
                "{placeholder:?}"
            );
        }
    }

    #[test]
    fn a_caption_is_kept_as_the_media_text() {
        assert_eq!(
            kind(
                "IMG-20200115-WA0001.jpg (file attached)\nthe view from here",
                false
            ),
            (MEDIA, "the view from here".to_owned())
        );
        assert_eq!(
            kind(
                "<attached: 00000012-PHOTO-2020-01-15-02-22-56.jpg> look",
                true
            ),
            (MEDIA, "look".to_owned())
        );
    }

    #[test]
    fn deleted_messages_in_each_language() {
        for text in [
            "This message was deleted",
            "You deleted this message.",
            "Se eliminó este mensaje.",
            "Eliminaste este mensaje.",
            "Esta mensagem foi apagada",
            "Você apagou esta mensagem",
            "Diese Nachricht wurde gelöscht.",
            "Du hast diese Nachricht gelöscht.",
            "Ce message a été supprimé",
            "Vous avez supprimé ce message",
            "Questo messaggio è stato eliminato",
            "Dit bericht is verwijderd",
            "Tämä viesti poistettiin",
        ] {
            assert_eq!(kind(text, false), (DELETED_KIND, String::new()), "{text:?}");
            assert_eq!(kind(text, true).0, DELETED_KIND, "{text:?}");
        }
    }

    #[test]
    fn the_edited_marker_is_stripped() {
        for (text, kept) in [
            ("see you <This message was edited>", "see you"),
            ("nos vemos <Se editó este mensaje.>", "nos vemos"),
            ("até logo <Mensagem editada>", "até logo"),
            ("bis dann <Diese Nachricht wurde bearbeitet>", "bis dann"),
            ("à plus <Ce message a été modifié>", "à plus"),
            ("a dopo <Questo messaggio è stato modificato>", "a dopo"),
            ("tot zo <Dit bericht is bewerkt>", "tot zo"),
            (
                "line one\nline two <This message was edited>",
                "line one\nline two",
            ),
            ("a <b> c <not a marker>", "a <b> c <not a marker>"),
        ] {
            assert_eq!(kind(text, false), (TEXT, kept.to_owned()), "{text:?}");
        }
    }

    #[test]
    fn events_under_a_name_are_system() {
        for text in [
            "Missed voice call",
            "Missed video call, Tap to call back",
            "Messages and calls are end-to-end encrypted. No one outside of this chat can read them.",
            "Llamada perdida",
            "Verpasster Sprachanruf",
            "Appel vocal manqué",
        ] {
            assert_eq!(kind(text, false).0, Kind::System, "{text:?}");
        }
        assert_eq!(kind("Ana added Bo", true).0, Kind::System);
        assert_eq!(kind("Ana added Bo", false).0, TEXT);
    }

    #[test]
    fn group_events_with_a_colon_are_not_authors() {
        assert!(author_is_system(
            "Ana changed the subject from \"a\" to \"b"
        ));
        assert!(author_is_system("Ana creó el grupo \"Fiesta"));
        assert!(!author_is_system("Ana María"));
        assert!(!author_is_system("+34 600 00 00 00"));
    }

    #[test]
    fn plain_text_stays_text() {
        for text in [
            "<3",
            "<promise>",
            "<b>bold</b>",
            "the image omitted from the report is fine",
            "12. item\n3/4 of it",
            "",
        ] {
            assert_eq!(kind(text, false), (TEXT, text.to_owned()), "{text:?}");
        }
    }
}
