//! Whether a reply is written to someone other than the contact: a letter or a
//! draft ("To whom it may concern", "Subject:", "Here's a message you can
//! send"), or a salutation to a role or, when the contact's name is known, to
//! another name ("Hi boss,", "Dear Mr. Smith,", "Hey Tom!" to Maria).
//!
//! Only the opening is read: a reply that mentions someone else ("tell Tom hi")
//! is ordinary, and a message for someone else that opens with no salutation
//! cannot be told from a reply.

use super::Dropped;

/// How a letter or a draft opens, lowercase.
const FRAMES: &[&str] = &[
    "to whom it may concern",
    "subject:",
    "re:",
    "draft:",
    "here's a message",
    "here is a message",
    "here's the message",
    "here is the message",
    "here's a draft",
    "here is a draft",
    "here's what you can send",
    "here is what you can send",
    "a quien corresponda",
    "a quien pueda interesar",
    "asunto:",
    "assunto:",
    "objet :",
    "objet:",
    "madame, monsieur",
    "sehr geehrte",
    "betreff:",
    "oggetto:",
    "geachte",
    "onderwerp:",
];

/// Words a salutation opens with, lowercase.
const GREETINGS: &[&str] = &[
    "hi",
    "hey",
    "hello",
    "hiya",
    "heya",
    "dear",
    "yo",
    "hola",
    "buenas",
    "querido",
    "querida",
    "estimado",
    "estimada",
    "oi",
    "olá",
    "ola",
    "prezado",
    "prezada",
    "bonjour",
    "salut",
    "coucou",
    "cher",
    "chère",
    "hallo",
    "moin",
    "servus",
    "liebe",
    "lieber",
    "ciao",
    "caro",
    "cara",
    "gentile",
    "hoi",
    "beste",
    "hej",
    "buenos",
    "bom",
    "boa",
    "good",
    "guten",
    "buongiorno",
    "buonasera",
    "goedemorgen",
    "goedemiddag",
    "bonsoir",
];

/// Words of a greeting phrase after its first ("Buenos días", "Good morning"):
/// no name.
const TIMES_OF_DAY: &[&str] = &[
    "días",
    "dias",
    "tardes",
    "noches",
    "dia",
    "tarde",
    "noite",
    "morning",
    "afternoon",
    "evening",
    "night",
    "morgen",
    "tag",
    "abend",
    "giorno",
    "sera",
    "soir",
    "avond",
    "middag",
];

/// Titles a name may follow ("Mr Silva"): the name after one is what counts.
const TITLES: &[&str] = &[
    "mr",
    "mrs",
    "ms",
    "dr",
    "sr",
    "sra",
    "señor",
    "señora",
    "senhor",
    "senhora",
    "monsieur",
    "madame",
    "herr",
    "frau",
    "signore",
    "signora",
    "dottore",
    "dottoressa",
    "meneer",
    "mevrouw",
];

/// Whom a salutation to the contact does not name: a role or a title.
const ROLES: &[&str] = &[
    "boss",
    "sir",
    "madam",
    "mr",
    "mrs",
    "ms",
    "dr",
    "team",
    "hr",
    "manager",
    "jefe",
    "jefa",
    "señor",
    "señora",
    "sr",
    "sra",
    "chefe",
    "senhor",
    "senhora",
    "patron",
    "monsieur",
    "madame",
    "chef",
    "herr",
    "frau",
    "capo",
    "signore",
    "signora",
    "dottore",
    "dottoressa",
    "baas",
    "meneer",
    "mevrouw",
];

/// What a salutation to the contact may call them instead of their name.
const ENDEARMENTS: &[&str] = &[
    "you",
    "there",
    "all",
    "guys",
    "girl",
    "girls",
    "man",
    "dude",
    "bro",
    "sis",
    "babe",
    "baby",
    "love",
    "hun",
    "honey",
    "sweetie",
    "sweetheart",
    "darling",
    "buddy",
    "mate",
    "friend",
    "everyone",
    "mom",
    "mum",
    "mama",
    "dad",
    "papa",
    "amigo",
    "amiga",
    "guapa",
    "guapo",
    "cariño",
    "tía",
    "tío",
    "tia",
    "tio",
    "mamá",
    "papá",
    "mano",
    "mãe",
    "pai",
    "chérie",
    "chéri",
    "mec",
    "maman",
    "schatz",
    "mutti",
    "vati",
    "tesoro",
    "bella",
    "bello",
    "mamma",
    "papà",
    "lieverd",
    "schat",
];

/// Why a text written to someone else was dropped.
const SOMEONE_ELSE: Dropped = "written to someone other than the contact";

/// Why `reply` was dropped when it opens as a letter or a draft, or greets a
/// role or (when `contact`, their name, is known) a name not theirs.
pub fn written_to_someone_else(reply: &str, contact: Option<&str>) -> Option<Dropped> {
    let first = reply.lines().next().unwrap_or_default().trim();
    let lower = first.to_lowercase().replace('\u{2019}', "'");
    if FRAMES.iter().any(|f| lower.starts_with(f)) {
        return Some("a letter or a draft, not a message to the contact");
    }
    // The salutation is what comes before the first punctuation: "Hi boss," or
    // "Hey Tom Smith!", never "Hi! How was it". A title's period ("Mr.") is no end.
    let first = without_title_periods(first);
    let head = first
        .split(|c: char| !(c.is_alphanumeric() || c.is_whitespace() || c == '\''))
        .next()
        .unwrap_or_default();
    let words: Vec<&str> = head.split_whitespace().collect();
    let [greeting, named @ ..] = words.as_slice() else {
        return None;
    };
    if !GREETINGS.contains(&greeting.to_lowercase().as_str()) || !(1..=2).contains(&named.len()) {
        return None;
    }
    let is = |list: &[&str]| {
        named
            .iter()
            .any(|w| list.contains(&w.to_lowercase().as_str()))
    };
    if is(TIMES_OF_DAY) {
        return None;
    }
    // "Mr Silva" to João Silva greets the contact; "Mr Thompson" to Maria does not.
    let titled = named.len() == 2 && TITLES.contains(&named[0].to_lowercase().as_str());
    if titled && let Some(contact) = contact {
        return (!names_contact(named[1], contact)).then_some(SOMEONE_ELSE);
    }
    if is(ROLES) {
        return Some(SOMEONE_ELSE);
    }
    let name = named[0];
    let capital = name.chars().next().is_some_and(char::is_uppercase);
    let contact = contact.filter(|c| c.chars().any(char::is_alphabetic))?;
    let other = capital && !is(ENDEARMENTS) && !is(GREETINGS) && !names_contact(name, contact);
    other.then_some(SOMEONE_ELSE)
}

/// `text` with the period after a title dropped: "Dear Mr. Silva" reads as
/// "Dear Mr Silva".
fn without_title_periods(text: &str) -> String {
    text.split(' ')
        .map(|w| match w.strip_suffix('.') {
            Some(t) if TITLES.contains(&t.to_lowercase().as_str()) => t,
            _ => w,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether `name` is (a short form of) a word of the contact's name: "Mari"
/// for "Maria Souza", "Souza" too.
fn names_contact(name: &str, contact: &str) -> bool {
    let name = name.to_lowercase();
    contact
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .any(|w| {
            let (short, long) = if name.len() <= w.len() {
                (&name, &w)
            } else {
                (&w, &name)
            };
            short.chars().count() >= 3 && long.starts_with(short.as_str())
        })
}
