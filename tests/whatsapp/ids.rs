//! Message ids from WhatsApp ids: valid, distinct and stable for any id.

use secondme::schema;

/// A contact id as the gateway makes them.
fn contact_id(phone: &str) -> String {
    use secondme::bridge::whatsapp::contact::{ContactHasher, Person};
    ContactHasher::new([5; 32]).id(&Person::Phone(phone.into()))
}

/// WhatsApp ids the queue once refused (over 92 bytes: the message id went over
/// the 120-byte limit) or merged (no letters or digits), and a usual one, which
/// is kept as it is.
#[test]
fn long_and_odd_whatsapp_ids_get_valid_distinct_message_ids() {
    use secondme::bridge::whatsapp::message_id;
    let contact = contact_id("15550001111");
    for len in [92, 93, 120, 128, 4096] {
        let id = message_id(&contact, &"A".repeat(len));
        assert!(schema::check_id(&id).is_ok(), "{len}: {id}");
    }
    assert_ne!(
        message_id(&contact, &"A".repeat(128)),
        message_id(&contact, &"A".repeat(129))
    );
    let odd = [
        "",
        "!",
        "??",
        "++",
        "--",
        "__",
        "\u{1f600}",
        "\u{202e}",
        "é",
    ];
    let ids: std::collections::HashSet<String> =
        odd.iter().map(|w| message_id(&contact, w)).collect();
    assert_eq!(ids.len(), odd.len(), "{ids:?}");
    assert!(ids.iter().all(|id| schema::check_id(id).is_ok()), "{ids:?}");
    assert_eq!(
        message_id(&contact, "3EB0C767D26A8F8B2D4A"),
        format!("{contact}.3EB0C767D26A8F8B2D4A")
    );
}

/// WhatsApp ids as they may come: usual ones, long ones, ones without letters
/// or digits, and anything at all.
fn whatsapp_id() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        "[A-Za-z0-9_-]{0,70}",
        "[A-Za-z0-9]{88,140}",
        "[^A-Za-z0-9]{0,12}",
        "[-_.!? ]{0,6}",
        any::<String>(),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(1024))]

    /// Any two distinct WhatsApp ids (and an id and its near twin), in one chat
    /// or two, map to distinct message ids, each valid (within the 120-byte
    /// limit) and the same every time.
    #[test]
    fn distinct_whatsapp_ids_map_to_distinct_valid_stable_message_ids(
        a in whatsapp_id(),
        b in whatsapp_id(),
        tail in "[A-Za-z0-9!é]{1,3}",
    ) {
        use secondme::bridge::whatsapp::message_id;
        let (one, two) = (contact_id("15550001111"), contact_id("15550002222"));
        let near = format!("{a}{tail}");
        for w in [&a, &b, &near] {
            let id = message_id(&one, w);
            proptest::prop_assert!(schema::check_id(&id).is_ok(), "{:?} -> {}", w, id);
            proptest::prop_assert!(id.len() <= schema::MAX_ID_BYTES);
            proptest::prop_assert_eq!(&id, &message_id(&one, w));
            proptest::prop_assert_ne!(&id, &message_id(&two, w));
        }
        proptest::prop_assert_ne!(message_id(&one, &a), message_id(&one, &near));
        if a != b {
            proptest::prop_assert_ne!(message_id(&one, &a), message_id(&one, &b));
            proptest::prop_assert_ne!(message_id(&one, &a), message_id(&two, &b));
        }
    }
}
