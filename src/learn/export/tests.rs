//! Whole exports, written here in each phone's format, parsed exactly.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// Ms since the epoch of a UTC date-time, counted day by day (independent of
/// the parser's calendar arithmetic).
fn utc(year: i64, month: u32, day: u32, hour: i64, minute: i64, second: i64) -> i64 {
    let leap = |y: i64| y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let mut days = 0;
    for y in 1970..year {
        days += if leap(y) { 366 } else { 365 };
    }
    let lengths = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    days += lengths[..month as usize - 1].iter().sum::<i64>();
    days += i64::from(day) - 1;
    ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000
}

fn msg(ts: i64, author: &str, kind: LineKind, text: &str) -> ExportMessage {
    ExportMessage {
        ts,
        author: author.to_owned(),
        kind,
        text: text.to_owned(),
    }
}

fn text(ts: i64, author: &str, text: &str) -> ExportMessage {
    msg(ts, author, LineKind::Text, text)
}

fn skipped(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|&(r, n)| (r.to_owned(), n)).collect()
}

/// Every line is a header, a continuation, a system line or skipped.
fn accounted(p: &ParsedExport) -> usize {
    p.messages.len() + p.continuations + p.system + p.skipped_lines()
}

#[test]
fn the_calendar_of_the_tests_agrees_with_date() {
    // `date -u -d '2020-01-15 02:22:56' +%s`
    assert_eq!(utc(2020, 1, 15, 2, 22, 56), 1_579_054_976_000);
}

#[test]
fn android_day_first_dotted_with_multi_line_messages() {
    let export = "\
06.08.2016, 13:23 - Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them. Tap to learn more.
06.08.2016, 13:23 - Ana: Shopping list:
12. eggs
3/4 of the cake

06.08.2016, 13:25 - Bo: ok: got it
07.08.2016, 09:01 - Bo: <Media omitted>
07.08.2016, 09:02 - Ana: This message was deleted
07.08.2016, 21:59 - Ana: see you at 8 <This message was edited>
";
    let p = parse_text(export);
    assert_eq!(p.format, "android-24h-dotted");
    assert_eq!(
        p.day_first, None,
        "no number over 12 and one day: undecidable"
    );
    assert_eq!(
        p.messages,
        vec![
            text(
                utc(2016, 8, 6, 13, 23, 0),
                "Ana",
                "Shopping list:\n12. eggs\n3/4 of the cake"
            ),
            text(utc(2016, 8, 6, 13, 25, 0), "Bo", "ok: got it"),
            msg(utc(2016, 8, 7, 9, 1, 0), "Bo", LineKind::Media, ""),
            msg(utc(2016, 8, 7, 9, 2, 0), "Ana", LineKind::Deleted, ""),
            text(utc(2016, 8, 7, 21, 59, 0), "Ana", "see you at 8"),
        ]
    );
    assert_eq!(p.system, 1);
    assert_eq!((p.lines, p.continuations), (9, 3));
    assert!(p.skipped.is_empty());
    assert_eq!(accounted(&p), p.lines);
}

#[test]
fn a_day_over_twelve_anywhere_decides_every_line() {
    // The first lines fit both orders; the last one (13) decides day first for all.
    let export = "\
03.04.2019, 10:00 - Ana: first
05.04.2019, 10:00 - Bo: second
13.04.2019, 10:00 - Ana: third
";
    let p = parse_text(export);
    assert_eq!(p.day_first, Some(true));
    let ts: Vec<i64> = p.messages.iter().map(|m| m.ts).collect();
    assert_eq!(
        ts,
        [
            utc(2019, 4, 3, 10, 0, 0),
            utc(2019, 4, 5, 10, 0, 0),
            utc(2019, 4, 13, 10, 0, 0)
        ]
    );
}

#[test]
fn us_month_first_twelve_hour_with_a_narrow_no_break_space() {
    let export = "\
3/6/18, 1:55\u{202F}PM - Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them. Tap to learn more.
3/6/18, 1:55\u{202F}PM - Dana: hey you
3/6/18, 11:02\u{202F}PM - Eli: Hey!
3/14/18, 12:01\u{202F}AM - Dana: IMG-20180314-WA0001.jpg (file attached)
happy pi day
3/14/18, 12:30\u{202F}PM - Eli: You deleted this message
";
    let p = parse_text(export);
    assert_eq!(p.format, "android-12h-slashed");
    assert_eq!(p.day_first, Some(false));
    assert_eq!(
        p.messages,
        vec![
            text(utc(2018, 3, 6, 13, 55, 0), "Dana", "hey you"),
            text(utc(2018, 3, 6, 23, 2, 0), "Eli", "Hey!"),
            msg(
                utc(2018, 3, 14, 0, 1, 0),
                "Dana",
                LineKind::Media,
                "happy pi day"
            ),
            msg(utc(2018, 3, 14, 12, 30, 0), "Eli", LineKind::Deleted, ""),
        ]
    );
    assert_eq!(p.system, 1);
    assert_eq!(accounted(&p), p.lines);
}

#[test]
fn spanish_p_m_with_no_break_spaces_and_its_placeholders() {
    let nb = '\u{A0}';
    let export = format!(
        "\
15/1/20, 2:22{nb}p.{nb}m. - Los mensajes y las llamadas están cifrados de extremo a extremo. Nadie fuera de este chat, ni siquiera WhatsApp, puede leerlos ni escucharlos.
15/1/20, 2:22{nb}p.{nb}m. - Lucía creó el grupo \"Cena\"
15/1/20, 2:23{nb}p.{nb}m. - Lucía añadió a Pablo
15/1/20, 2:24{nb}p.{nb}m. - Lucía: ¿Vamos el sábado?
15/1/20, 2:25{nb}p.{nb}m. - Pablo: <Multimedia omitido>
15/1/20, 9:05{nb}a.{nb}m. - Pablo: Se eliminó este mensaje
16/1/20, 10:40{nb}a.{nb}m. - Lucía: Vale, a las 9 <Se editó este mensaje.>
16/1/20, 10:41{nb}a.{nb}m. - Pablo: Eliminaste este mensaje
"
    );
    let p = parse_text(&export);
    assert_eq!(p.format, "android-12h-slashed");
    assert_eq!(p.day_first, Some(true));
    assert_eq!(
        p.messages,
        vec![
            text(utc(2020, 1, 15, 14, 24, 0), "Lucía", "¿Vamos el sábado?"),
            msg(utc(2020, 1, 15, 14, 25, 0), "Pablo", LineKind::Media, ""),
            msg(utc(2020, 1, 15, 9, 5, 0), "Pablo", LineKind::Deleted, ""),
            text(utc(2020, 1, 16, 10, 40, 0), "Lucía", "Vale, a las 9"),
            msg(utc(2020, 1, 16, 10, 41, 0), "Pablo", LineKind::Deleted, ""),
        ]
    );
    assert_eq!(p.system, 3);
    assert_eq!(accounted(&p), p.lines);
}

#[test]
fn finnish_klo_with_dotted_times() {
    let export = "\
13.6.2018 klo 21.25 - Viestit ja puhelut ovat päästä päähän salattuja.
13.6.2018 klo 21.25 - Aino: Moi!
13.6.2018 klo 21.27 - Eero: <Media jätettiin pois>
14.6.2018 klo 7.03 - Aino: Tämä viesti poistettiin
";
    let p = parse_text(export);
    assert_eq!(p.format, "android-24h-dotted-worded");
    assert_eq!(p.day_first, Some(true));
    assert_eq!(
        p.messages,
        vec![
            text(utc(2018, 6, 13, 21, 25, 0), "Aino", "Moi!"),
            msg(utc(2018, 6, 13, 21, 27, 0), "Eero", LineKind::Media, ""),
            msg(utc(2018, 6, 14, 7, 3, 0), "Aino", LineKind::Deleted, ""),
        ]
    );
    assert_eq!(p.system, 1);
}

#[test]
fn ios_twelve_hour_bracketed_with_marks_before_attachments_and_events() {
    let lrm = '\u{200E}';
    let export = format!(
        "\
[7/11/2017, 8:20:41 PM] Friends: {lrm}Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them.
[7/11/2017, 8:20:41 PM] Friends: {lrm}Gus created group \"Friends\"
[7/11/2017, 8:20:42 PM] Friends: {lrm}Gus added you
[7/11/2017, 8:21:00 PM] Gus: Welcome all
two lines
{lrm}[7/11/2017, 8:22:13 PM] Hana: {lrm}image omitted
{lrm}[7/11/2017, 8:22:15 PM] Hana: {lrm}<attached: 00000012-PHOTO-2017-07-11-20-22-15.jpg>
[7/11/2017, 8:23:00 PM] Gus: {lrm}Missed voice call
[7/12/2017, 12:00:01 AM] Hana: {lrm}This message was deleted.
[7/13/2017, 9:15:00 AM] Gus: done {lrm}<This message was edited>
"
    );
    let p = parse_text(&export);
    assert_eq!(p.format, "ios-12h-slashed");
    assert_eq!(
        p.day_first,
        Some(false),
        "7/12 then 7/13: month first runs forward"
    );
    assert_eq!(
        p.messages,
        vec![
            text(utc(2017, 7, 11, 20, 21, 0), "Gus", "Welcome all\ntwo lines"),
            msg(utc(2017, 7, 11, 20, 22, 13), "Hana", LineKind::Media, ""),
            msg(utc(2017, 7, 11, 20, 22, 15), "Hana", LineKind::Media, ""),
            msg(utc(2017, 7, 12, 0, 0, 1), "Hana", LineKind::Deleted, ""),
            text(utc(2017, 7, 13, 9, 15, 0), "Gus", "done"),
        ]
    );
    assert_eq!(p.system, 4);
    assert_eq!(
        p.authors(),
        vec![("Hana".to_owned(), 3), ("Gus".to_owned(), 2)]
    );
    assert_eq!(accounted(&p), p.lines);
}

#[test]
fn ios_twenty_four_hour_day_first() {
    let export = "\
[15/01/2020, 02:22:56] Ines: Bom dia
[15/01/2020, 02:23:10] João: \u{200E}<anexado: 00000013-PHOTO-2020-01-15-02-23-10.jpg>
[16/01/2020, 18:00:00] Ines: Esta mensagem foi apagada
[16/01/2020, 18:01:00] João: Já volto <Mensagem editada>
";
    let p = parse_text(export);
    assert_eq!(p.format, "ios-24h-slashed");
    assert_eq!(p.day_first, Some(true));
    assert_eq!(
        p.messages,
        vec![
            text(1_579_054_976_000, "Ines", "Bom dia"),
            msg(utc(2020, 1, 15, 2, 23, 10), "João", LineKind::Media, ""),
            msg(utc(2020, 1, 16, 18, 0, 0), "Ines", LineKind::Deleted, ""),
            text(utc(2020, 1, 16, 18, 1, 0), "João", "Já volto"),
        ]
    );
}

#[test]
fn german_french_italian_dutch_exports() {
    let export = "\
06.08.16, 13:23 - Nachrichten und Anrufe sind Ende-zu-Ende-verschlüsselt.
06.08.16, 13:23 - Jan hat Kai hinzugefügt
06.08.16, 13:24 - Jan: <Medien ausgeschlossen>
06.08.16, 13:25 - Kai: Diese Nachricht wurde gelöscht
06.08.16, 13:26 - Kai: Du hast diese Nachricht gelöscht
06.08.16, 13:27 - Jan: Ce message a été supprimé
06.08.16, 13:28 - Jan: Vous avez supprimé ce message
06.08.16, 13:29 - Kai: <Médias omis>
06.08.16, 13:30 - Kai: <Media omessi>
06.08.16, 13:31 - Jan: <Media weggelaten>
06.08.16, 13:32 - Jan: <Mídia oculta>
06.08.16, 13:33 - Jan: Questo messaggio è stato eliminato
06.08.16, 13:34 - Kai: Bis morgen <Diese Nachricht wurde bearbeitet>
06.08.16, 13:35 - Kai: À demain <Ce message a été modifié>
";
    let p = parse_text(export);
    assert_eq!(p.system, 2);
    let kinds: Vec<LineKind> = p.messages.iter().map(|m| m.kind).collect();
    use LineKind::{Deleted, Media, Text};
    assert_eq!(
        kinds,
        [
            Media, Deleted, Deleted, Deleted, Deleted, Media, Media, Media, Media, Deleted, Text,
            Text
        ]
    );
    assert_eq!(p.messages[10].text, "Bis morgen");
    assert_eq!(p.messages[11].text, "À demain");
    assert_eq!(p.count(Media), 5);
    assert_eq!(p.count(Deleted), 5);
}

#[test]
fn year_first_forms() {
    let p = parse_text("2020-01-15, 02:22 - Ana: a\n2020-01-16, 14:00 - Bo: b\n");
    assert_eq!(p.format, "android-24h-dashed-year-first");
    assert_eq!(p.day_first, None);
    assert_eq!(
        p.messages,
        vec![
            text(utc(2020, 1, 15, 2, 22, 0), "Ana", "a"),
            text(utc(2020, 1, 16, 14, 0, 0), "Bo", "b")
        ]
    );
    let p = parse_text("[2020/01/15 02:22:56] Ana: a\n[2020/01/16 14:00:00] Bo: b\n");
    assert_eq!(p.format, "ios-24h-slashed-year-first");
    assert_eq!(p.messages[0].ts, 1_579_054_976_000);
    let p = parse_text("2020. 01. 15. 2:22 - Ana: a\n");
    assert_eq!(
        p.messages,
        vec![text(utc(2020, 1, 15, 2, 22, 0), "Ana", "a")]
    );
}

/// Every header format whatstk lists (date order × separator × brackets ×
/// seconds × clock), with two- and four-digit years, each read exactly.
#[test]
fn every_whatstk_header_format() {
    let moments = [(2020, 1, 5, 9, 7, 3), (2020, 1, 25, 21, 40, 59)];
    let mut formats = std::collections::BTreeSet::new();
    for order in ["dmy", "mdy", "ymd", "ydm"] {
        for sep in ['/', '.', '-'] {
            for bracketed in [false, true] {
                for seconds in [false, true] {
                    for twelve in [false, true] {
                        for four_digit_year in [false, true] {
                            let mut export = String::new();
                            let mut expected = Vec::new();
                            for (i, &(y, mo, d, h, mi, s)) in moments.iter().enumerate() {
                                let year = if four_digit_year { y } else { y % 100 };
                                let date = match order {
                                    "dmy" => format!("{d:02}{sep}{mo:02}{sep}{year:02}"),
                                    "mdy" => format!("{mo:02}{sep}{d:02}{sep}{year:02}"),
                                    "ymd" => format!("{year:02}{sep}{mo:02}{sep}{d:02}"),
                                    _ => format!("{year:02}{sep}{d:02}{sep}{mo:02}"),
                                };
                                let clock = if twelve {
                                    let half = if h >= 12 { "PM" } else { "AM" };
                                    let h12 = if h % 12 == 0 { 12 } else { h % 12 };
                                    match seconds {
                                        true => format!("{h12}:{mi:02}:{s:02} {half}"),
                                        false => format!("{h12}:{mi:02} {half}"),
                                    }
                                } else if seconds {
                                    format!("{h:02}:{mi:02}:{s:02}")
                                } else {
                                    format!("{h:02}:{mi:02}")
                                };
                                let line = if bracketed {
                                    format!("[{date} {clock}] Ana Lee: message {i}\n")
                                } else {
                                    format!("{date}, {clock} - Ana Lee: message {i}\n")
                                };
                                export.push_str(&line);
                                let s = if seconds { s } else { 0 };
                                expected.push(text(
                                    utc(y, mo, d, h, mi, s),
                                    "Ana Lee",
                                    &format!("message {i}"),
                                ));
                            }
                            let p = parse_text(&export);
                            assert_eq!(p.messages, expected, "{export}");
                            let day_first = match order {
                                "dmy" => Some(true),
                                "mdy" => Some(false),
                                _ => None,
                            };
                            assert_eq!(p.day_first, day_first, "{export}");
                            formats.insert((order, sep, bracketed, seconds, twelve));
                        }
                    }
                }
            }
        }
    }
    assert_eq!(formats.len(), 96);
}

#[test]
fn dates_are_read_in_the_order_that_runs_forward() {
    // Day first: 1, 2, 3 Feb, 1 Mar. Month first: 2 Jan, 2 Feb, 2 Mar, 3 Jan: backward.
    let export = "\
01/02/21, 10:00 - Ana: a
02/02/21, 10:00 - Bo: b
03/02/21, 10:00 - Ana: c
01/03/21, 10:00 - Bo: d
";
    let p = parse_text(export);
    assert_eq!(p.day_first, Some(true));
    assert_eq!(p.messages[3].ts, utc(2021, 3, 1, 10, 0, 0));
}

#[test]
fn crlf_and_a_byte_order_mark() {
    let export = "\u{FEFF}06.08.2016, 13:23 - Ana: one\r\ntwo\r\n06.08.2016, 13:24 - Bo: three\r\n";
    let p = parse_text(export);
    assert_eq!(
        p.messages,
        vec![
            text(utc(2016, 8, 6, 13, 23, 0), "Ana", "one\ntwo"),
            text(utc(2016, 8, 6, 13, 24, 0), "Bo", "three")
        ]
    );
}

#[test]
fn a_header_of_another_format_inside_a_message_is_text() {
    let export = "\
[15/01/2020, 02:22:56] Ana: look what Bo sent:
15/01/2020, 02:20 - Bo: hi there
3/4 of it
[15/01/2020, 02:23:00] Bo: ha
";
    let p = parse_text(export);
    assert_eq!(
        p.messages,
        vec![
            text(
                utc(2020, 1, 15, 2, 22, 56),
                "Ana",
                "look what Bo sent:\n15/01/2020, 02:20 - Bo: hi there\n3/4 of it"
            ),
            text(utc(2020, 1, 15, 2, 23, 0), "Bo", "ha"),
        ]
    );
}

#[test]
fn a_message_is_cut_at_64_kib_and_the_lines_past_the_cut_are_counted() {
    let accents = "é".repeat(40_000);
    let (a, b) = ("a".repeat(60_000), "b".repeat(10_000));
    let export = format!(
        "06.08.2016, 13:23 - Maria: {accents}\nmore\nand more\n\
         06.08.2016, 13:24 - Sam: ok\n\
         07.08.2016, 09:00 - Maria: {a}\n{b}\nlast line\n"
    );
    let p = parse_text(&export);
    assert_eq!(p.messages.len(), 3);
    // 2 bytes a character: the cut falls between two of them.
    assert_eq!(p.messages[0].text, "é".repeat(MAX_MESSAGE_BYTES / 2));
    assert_eq!(p.messages[1].text, "ok");
    let kept_b = MAX_MESSAGE_BYTES - a.len() - 1;
    assert_eq!(p.messages[2].text, format!("{a}\n{}", &b[..kept_b]));
    assert_eq!(p.skipped, skipped(&[("cut: too long", 3)]));
    assert_eq!(
        p.continuations, 1,
        "the line crossing the cut keeps its start"
    );
    assert_eq!(accounted(&p), p.lines);
}

#[test]
fn unreadable_lines_are_skipped_with_their_reason() {
    let export = "\
Chat history with Ana
(exported)
30.02.2020, 10:00 - Ana: not a day
still February 30
01.03.2020, 10:00 - Ana: fine
15.03.2020, 10:00 - Ana changed the subject from \"a: b\" to \"c\"
stray line after an event
";
    let p = parse_text(export);
    assert_eq!(
        p.messages,
        vec![text(utc(2020, 3, 1, 10, 0, 0), "Ana", "fine")]
    );
    assert_eq!(p.system, 1);
    assert_eq!(
        p.skipped,
        skipped(&[
            ("before the first message", 2),
            ("invalid date", 1),
            ("continues a line with an invalid date", 1),
            ("continues a system line", 1),
        ])
    );
    assert_eq!(accounted(&p), p.lines);
    assert_eq!(p.lines, 7);
}

#[test]
fn an_author_may_hold_a_colon_only_before_the_first_colon_and_space() {
    let p = parse_text("06.08.2016, 13:23 - Ana: re: lunch\n06.08.2016, 13:24 - Bo:\nlater\n");
    assert_eq!(
        p.messages,
        vec![
            text(utc(2016, 8, 6, 13, 23, 0), "Ana", "re: lunch"),
            text(utc(2016, 8, 6, 13, 24, 0), "Bo", "\nlater"),
        ]
    );
}

#[test]
fn authors_most_messages_first() {
    let p = parse_text(
        "1/2/20, 10:00 - Zoe: a\n1/2/20, 10:01 - Max: b\n1/2/20, 10:02 - Zoe: c\n1/2/20, 10:03 - Amy: d\n",
    );
    assert_eq!(
        p.authors(),
        vec![
            ("Zoe".to_owned(), 2),
            ("Amy".to_owned(), 1),
            ("Max".to_owned(), 1)
        ]
    );
}

#[test]
fn a_text_without_headers_reads_as_nothing() {
    let p = parse_text("hello\nworld\n");
    assert_eq!(p.format, "");
    assert!(p.messages.is_empty());
    assert_eq!(p.skipped, skipped(&[("before the first message", 2)]));
    assert_eq!(parse_text(""), ParsedExport::default());
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("secondme-export-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const IOS_CHAT: &str = "\
[15/01/2020, 02:22:56] Ana: \u{200E}Messages and calls are end-to-end encrypted.
[15/01/2020, 02:22:56] Ana: hola
qué tal
\u{200E}[15/01/2020, 02:23:10] Bo: \u{200E}<attached: 00000012-PHOTO-2020-01-15-02-23-10.jpg>
";

#[test]
fn a_zip_reads_like_its_txt_stored_or_deflated() {
    let dir = temp_dir("zip");
    let txt = dir.join("WhatsApp Chat - Ana.txt");
    std::fs::write(&txt, IOS_CHAT).expect("write");
    let from_txt = read_file(&txt).expect("the txt reads");
    assert_eq!(from_txt.messages.len(), 2);
    for deflate in [false, true] {
        let zip = zip::tests::build(&[
            (
                "00000012-PHOTO-2020-01-15-02-23-10.jpg",
                b"\xff\xd8\xff",
                deflate,
            ),
            ("_chat.txt", IOS_CHAT.as_bytes(), deflate),
        ]);
        let path = dir.join(format!("WhatsApp Chat - Ana {deflate}.zip"));
        std::fs::write(&path, zip).expect("write");
        assert_eq!(read_file(&path).expect("the zip reads"), from_txt);
    }
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn a_corrupt_zip_is_a_zip_error() {
    let dir = temp_dir("corrupt");
    let path = dir.join("chat.zip");
    let mut zip = zip::tests::build(&[("_chat.txt", IOS_CHAT.as_bytes(), true)]);
    zip.truncate(zip.len() - 30);
    std::fs::write(&path, &zip).expect("write");
    match read_file(&path) {
        Err(ExportError::Zip { path: p, why }) => {
            assert!(p.ends_with("chat.zip"));
            assert!(why.contains("end of central directory"), "{why}");
        }
        other => panic!("expected a zip error, got {other:?}"),
    }
    let path = dir.join("not-really.zip");
    std::fs::write(&path, "06.08.2016, 13:23 - Ana: hi\n").expect("write");
    assert!(matches!(read_file(&path), Err(ExportError::Zip { .. })));
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn invalid_utf8_is_replaced_and_other_files_are_text_or_not_exports() {
    let dir = temp_dir("utf8");
    let path = dir.join("chat.txt");
    std::fs::write(&path, b"06.08.2016, 13:23 - Ana: caf\xe9 ok\n").expect("write");
    let p = read_file(&path).expect("lossy, not an error");
    assert_eq!(p.messages[0].text, "caf\u{FFFD} ok");
    let path = dir.join("chat.log");
    std::fs::write(&path, "06.08.2016, 13:23 - Ana: hi\n").expect("write");
    assert_eq!(
        read_file(&path)
            .expect("any name reads as text")
            .messages
            .len(),
        1
    );
    let path = dir.join("notes.txt");
    std::fs::write(&path, "just notes\n").expect("write");
    assert!(matches!(read_file(&path), Err(ExportError::NotAnExport(_))));
    assert!(matches!(
        read_file(&dir.join("missing.txt")),
        Err(ExportError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).expect("clean up");
}

/// A line for the property tests: a valid header of a few formats, a header
/// with random numbers, something that starts with digits, or anything.
fn any_line() -> impl Strategy<Value = String> {
    let name = "[A-Za-z ]{0,8}";
    let body = "\\PC{0,20}";
    prop_oneof![
        (0u8..40, 0u8..14, 0u8..30, name, body)
            .prop_map(|(d, m, h, n, b)| format!("{d:02}.{m:02}.2020, {h:02}:15 - {n}: {b}")),
        (0u8..14, 0u8..40, 0u8..14, 0u8..2, name, body).prop_map(|(m, d, h, pm, n, b)| {
            let half = if pm == 1 { "PM" } else { "AM" };
            format!("\u{200E}[{m}/{d}/19, {h}:05:09\u{202F}{half}] {n}: \u{200E}{b}")
        }),
        (0u16..3000, 0u8..20, 0u8..20).prop_map(|(a, b, c)| format!("{a}/{b}/{c}, 10:00 - x")),
        Just("3/4 of the cake".to_owned()),
        Just(String::new()),
        "[0-9./:, \\[\\]APM-]{0,24}",
        "\\PC{0,40}",
        "[\u{200B}-\u{200F}\u{202A}-\u{202E}\u{2066}-\u{2069}\u{FEFF}a1:/ -]{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_line_is_accounted_for(lines in proptest::collection::vec(any_line(), 0..40), crlf in any::<bool>()) {
        let export = lines.join(if crlf { "\r\n" } else { "\n" });
        let p = parse_text(&export);
        prop_assert_eq!(p.lines, export.lines().count());
        prop_assert_eq!(accounted(&p), p.lines);
        for m in &p.messages {
            prop_assert!(!m.author.is_empty());
        }
    }

    #[test]
    fn bytes_of_any_kind_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let export = String::from_utf8_lossy(&bytes);
        let p = parse_text(&export);
        prop_assert_eq!(accounted(&p), p.lines);
    }
}
