//! Whether a reply says what its writer is: an AI, a bot, an assistant, a
//! language model, a program, automated, not human, or a well-known assistant
//! by name, in English, Spanish, Portuguese, French, German, Italian and Dutch.
//!
//! Such a statement has a subject ("I'm", "soy", "ich bin", "as", "this is")
//! and, after at most a few small words (articles, "just", "not", a
//! possessive), what the writer is said to be. Talk about bots, AI or Claude
//! Monet without such a subject passes. A denial ("I'm not a bot") is dropped
//! too: what the twin is, is for the person to discuss.

use super::Dropped;

/// How a subject speaks of the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// "I'm", "soy", "ich bin", "you're talking to".
    Me,
    /// "as", "como", "als": also "like" and "while" ("as AI gets better"), so
    /// only at the start of a clause, and a one-word claim must end the phrase.
    As,
    /// "this is", "c'est": may be about anything; a one-word claim must end
    /// the phrase ("this is AI news" passes).
    This,
}

/// Subjects, as lowercase words; a negation inside ("no soy") counts as one
/// after it.
const SUBJECTS: &[(&str, Kind)] = &[
    ("i'm", Kind::Me),
    ("im", Kind::Me),
    ("i am", Kind::Me),
    ("you're talking to", Kind::Me),
    ("you are talking to", Kind::Me),
    ("you're talking with", Kind::Me),
    ("you're chatting with", Kind::Me),
    ("you're texting", Kind::Me),
    ("you are texting", Kind::Me),
    ("as", Kind::As),
    ("this is", Kind::This),
    ("this message is", Kind::This),
    ("this reply is", Kind::This),
    ("this was", Kind::This),
    // Spanish
    ("soy", Kind::Me),
    ("yo soy", Kind::Me),
    ("no soy", Kind::Me),
    ("estás hablando con", Kind::Me),
    ("hablas con", Kind::Me),
    ("como", Kind::As),
    ("esto es", Kind::This),
    ("esta es", Kind::This),
    ("este es", Kind::This),
    ("este mensaje es", Kind::This),
    // Portuguese
    ("sou", Kind::Me),
    ("eu sou", Kind::Me),
    ("não sou", Kind::Me),
    ("nao sou", Kind::Me),
    ("está falando com", Kind::Me),
    ("estás a falar com", Kind::Me),
    ("enquanto", Kind::As),
    ("isto é", Kind::This),
    ("esta é", Kind::This),
    ("este é", Kind::This),
    ("esta mensagem é", Kind::This),
    // French
    ("je suis", Kind::Me),
    ("j suis", Kind::Me),
    ("je ne suis", Kind::Me),
    ("vous parlez à", Kind::Me),
    ("tu parles à", Kind::Me),
    ("tu parles avec", Kind::Me),
    ("en tant que", Kind::As),
    ("en tant qu", Kind::As),
    ("comme", Kind::As),
    ("c est", Kind::This),
    ("ceci est", Kind::This),
    ("ce message est", Kind::This),
    // German
    ("ich bin", Kind::Me),
    ("du sprichst mit", Kind::Me),
    ("du schreibst mit", Kind::Me),
    ("sie sprechen mit", Kind::Me),
    ("als", Kind::As),
    ("das ist", Kind::This),
    ("dies ist", Kind::This),
    ("diese nachricht ist", Kind::This),
    // Italian
    ("sono", Kind::Me),
    ("io sono", Kind::Me),
    ("non sono", Kind::Me),
    ("io non sono", Kind::Me),
    ("stai parlando con", Kind::Me),
    ("in quanto", Kind::As),
    ("come", Kind::As),
    ("questo è", Kind::This),
    ("questa è", Kind::This),
    ("questo messaggio è", Kind::This),
    // Dutch
    ("ik ben", Kind::Me),
    ("je praat met", Kind::Me),
    ("u praat met", Kind::Me),
    ("je chat met", Kind::Me),
    ("dit is", Kind::This),
    ("dit bericht is", Kind::This),
];

/// What a writer says it is, as lowercase words (a hyphen splits words:
/// "KI-Modell"). "Automatic" alone is left out: "c'est automatique" is about a
/// payment more often than about a message.
const MACHINES: &[&str] = &[
    "ai",
    "artificial intelligence",
    "ai assistant",
    "ai twin",
    "ai model",
    "ai language model",
    "ai powered",
    "ai generated",
    "ai written",
    "ai reply",
    "ai response",
    "ai message",
    "bot",
    "chatbot",
    "chat bot",
    "robot",
    "llm",
    "language model",
    "virtual assistant",
    "digital assistant",
    "chat assistant",
    "digital twin",
    "computer program",
    "program",
    "software",
    "neural network",
    "automated",
    "automated reply",
    "automated message",
    "automated response",
    "automatic reply",
    "automatic message",
    "automatic response",
    "auto reply",
    "autoreply",
    "auto generated",
    "automatically generated",
    // Spanish
    "ia",
    "inteligencia artificial",
    "asistente virtual",
    "asistente digital",
    "asistente de ia",
    "modelo de lenguaje",
    "modelo de ia",
    "programa",
    "programa informático",
    "respuesta automática",
    "mensaje automático",
    "automatizado",
    "automatizada",
    // Portuguese
    "inteligência artificial",
    "assistente virtual",
    "assistente de ia",
    "modelo de linguagem",
    "robô",
    "resposta automática",
    "mensagem automática",
    // French
    "intelligence artificielle",
    "assistant virtuel",
    "assistante virtuelle",
    "assistant ia",
    "modèle de langage",
    "programme",
    "logiciel",
    "réponse automatique",
    "message automatique",
    "automatisé",
    "automatisée",
    // German
    "ki",
    "künstliche intelligenz",
    "ki assistent",
    "ki modell",
    "ki zwilling",
    "ki antwort",
    "ki nachricht",
    "sprachmodell",
    "virtueller assistent",
    "digitaler assistent",
    "computerprogramm",
    "programm",
    "roboter",
    "automatische antwort",
    "automatische nachricht",
    "automatisiert",
    // Italian
    "intelligenza artificiale",
    "assistente virtuale",
    "assistente ia",
    "modello linguistico",
    "modello di linguaggio",
    "programma",
    "risposta automatica",
    "messaggio automatico",
    "automatizzato",
    "automatizzata",
    // Dutch
    "kunstmatige intelligentie",
    "ai assistent",
    "virtuele assistent",
    "digitale assistent",
    "taalmodel",
    "computerprogramma",
    "automatisch antwoord",
    "automatisch bericht",
    "geautomatiseerd",
];

/// Acronyms that are also words (Italian "ai", Portuguese "ia") or modifiers
/// ("im KI-Bereich"): right after a subject they count only when the phrase
/// ends with them.
const ACRONYMS: &[&str] = &["ai", "ia", "ki", "llm"];

/// What, negated, says the writer is not human.
const HUMANS: &[&str] = &[
    "human",
    "human being",
    "real person",
    "humano",
    "humana",
    "ser humano",
    "persona real",
    "pessoa real",
    "humain",
    "humaine",
    "être humain",
    "vraie personne",
    "mensch",
    "menschlich",
    "echter mensch",
    "echte person",
    "umano",
    "umana",
    "essere umano",
    "persona reale",
    "persona vera",
    "mens",
    "menselijk",
    "echt mens",
    "echt persoon",
    "echte persoon",
];

/// Well-known assistants and models, as a first word of their name.
const ASSISTANTS: &[&str] = &[
    "chatgpt",
    "gpt",
    "gpt4",
    "gpt4o",
    "claude",
    "gemini",
    "bard",
    "copilot",
    "llama",
    "mistral",
    "siri",
    "alexa",
    "cortana",
    "grok",
    "deepseek",
    "qwen",
    "bing",
    "perplexity",
];

/// Words after a machine word that make it a modifier: "an AI engineer", "ein
/// KI-Forscher", "a bot developer" are people.
const ROLES: &[&str] = &[
    "engineer",
    "engineers",
    "engineering",
    "researcher",
    "research",
    "developer",
    "dev",
    "scientist",
    "science",
    "student",
    "teacher",
    "trainer",
    "professor",
    "lecturer",
    "expert",
    "specialist",
    "consultant",
    "ethicist",
    "ethics",
    "enthusiast",
    "fan",
    "nerd",
    "geek",
    "skeptic",
    "sceptic",
    "critic",
    "hater",
    "lover",
    "guy",
    "person",
    "artist",
    "art",
    "lawyer",
    "designer",
    "writer",
    "investor",
    "founder",
    "manager",
    "lead",
    "team",
    "lab",
    "startup",
    "company",
    "policy",
    "course",
    "class",
    "news",
    "stuff",
    "tools",
    "user",
    "hobbyist",
    "forscher",
    "forscherin",
    "entwickler",
    "entwicklerin",
    "ingenieur",
    "ingenieurin",
    "experte",
    "expertin",
    "berater",
    "beraterin",
    "spezialist",
    "spezialistin",
    "studentin",
    "lehrer",
    "lehrerin",
    "firma",
    "onderzoeker",
    "ontwikkelaar",
    "deskundige",
    "adviseur",
    "docent",
    "bedrijf",
];

/// Indefinite articles: no assistant's name comes after one ("I'm a Gemini").
const INDEFINITE: &[&str] = &[
    "a", "an", "un", "una", "uno", "um", "uma", "une", "ein", "eine", "einer", "einen", "een",
];

/// Definite articles (a Portuguese or Italian name may take one: "sou o ChatGPT").
const DEFINITE: &[&str] = &[
    "the", "el", "la", "lo", "o", "le", "l", "der", "die", "das", "de", "het", "il",
];

/// Words that negate.
const NEGATIONS: &[&str] = &[
    "not", "never", "no", "nunca", "não", "nao", "pas", "ne", "jamais", "kein", "keine", "keinen",
    "nicht", "nie", "non", "geen", "niet",
];

/// Adverbs and adjectives between a subject and a claim ("just", "large").
const MODIFIERS: &[&str] = &[
    "just",
    "only",
    "merely",
    "simply",
    "actually",
    "really",
    "basically",
    "technically",
    "literally",
    "honestly",
    "obviously",
    "definitely",
    "clearly",
    "certainly",
    "also",
    "still",
    "now",
    "always",
    "large",
    "friendly",
    "helpful",
    "virtual",
    "digital",
    "personal",
    "conversational",
    "smart",
    "advanced",
    "generative",
    "simple",
    "new",
    "multilingual",
    "sólo",
    "solo",
    "solamente",
    "simplemente",
    "realmente",
    "apenas",
    "só",
    "somente",
    "gran",
    "grande",
    "pequeño",
    "pequeña",
    "juste",
    "seulement",
    "simplement",
    "vraiment",
    "qu",
    "que",
    "petit",
    "petite",
    "grand",
    "nur",
    "bloß",
    "eigentlich",
    "wirklich",
    "einfach",
    "halt",
    "eben",
    "großes",
    "großer",
    "große",
    "soltanto",
    "semplicemente",
    "davvero",
    "veramente",
    "piccolo",
    "alleen",
    "maar",
    "gewoon",
    "eigenlijk",
    "echt",
    "groot",
    "grote",
];

/// Possessives ("your AI twin"); an English "Sam's" counts too.
const POSSESSIVES: &[&str] = &[
    "your", "his", "her", "their", "tu", "su", "seu", "sua", "teu", "tua", "ton", "ta", "votre",
    "son", "sa", "dein", "deine", "ihr", "ihre", "sein", "seine", "je", "jouw", "uw", "zijn",
    "haar", "tuo", "suo", "vostro", "vostra",
];

/// Words that may follow a whole noun phrase: "as an AI I can't", "als KI kann
/// ich", "I'm a bot lol".
const CLAUSE_WORDS: &[&str] = &[
    "i", "i'm", "im", "i'll", "i've", "yo", "eu", "je", "j", "ich", "io", "ik", "no", "not", "non",
    "não", "nao", "ne", "n", "and", "but", "so", "or", "y", "e", "et", "und", "en", "pero", "mas",
    "mais", "aber", "ma", "maar", "ou", "oder", "lol", "haha", "tbh", "btw", "jaja", "kkk", "mdr",
    "here", "too", "that", "who", "which", "que", "qui", "che", "dat", "can", "can't", "cannot",
    "don't", "do", "have", "will", "won't", "puedo", "posso", "peux", "kann", "kan", "tengo",
    "tenho", "ho", "habe", "heb",
];

/// Words after which a clause starts ("but as a chatbot, ...").
const CONJUNCTIONS: &[&str] = &[
    "but", "and", "so", "well", "sure", "ok", "okay", "yes", "sorry", "pero", "y", "e", "mas",
    "mais", "et", "aber", "und", "ma", "maar", "en", "sí", "sim", "oui", "ja", "sì", "lol", "haha",
];

/// Elided words split from what follows them ("l'IA", "un'intelligenza", "qu'une").
const ELISIONS: &[&str] = &[
    "l", "j", "d", "c", "n", "s", "m", "t", "qu", "un", "dell", "all", "nell", "sull", "dall",
];

/// Most small words between a subject and a claim.
const MAX_SMALL: usize = 4;

/// Why a text was dropped when it says the writer is a machine.
const SAYS_MACHINE: Dropped = "says the writer is an AI, a bot or automated";
/// Why a text was dropped when it says the writer is not human.
const SAYS_NOT_HUMAN: Dropped = "says the writer is not human";
/// Why a text was dropped when it names the writer as a known assistant.
const SAYS_ASSISTANT: Dropped = "says the writer is a known AI assistant";

/// A word of the text.
#[derive(Debug)]
struct Token {
    /// Lowercase, typographic apostrophes made plain.
    word: String,
    /// Starts with a capital: a name may go on ("Claude Monet").
    capital: bool,
    /// First of a clause: the text's first word, or after punctuation.
    opens: bool,
    /// Punctuation (or the end of the text) follows it.
    closes: bool,
}

impl Token {
    fn new(raw: &str, opens: bool) -> Self {
        Self {
            word: raw.to_lowercase(),
            capital: raw.chars().next().is_some_and(char::is_uppercase),
            opens,
            closes: false,
        }
    }
}

/// Why `text` was dropped when it says what its writer is; `own` are the
/// person's and the persona's names, which are no assistant's ("I'm Claude"
/// from a Claude).
pub fn says_what_it_is(text: &str, own: &[&str]) -> Option<Dropped> {
    let own: Vec<String> = own
        .iter()
        .flat_map(|n| n.split_whitespace())
        .map(str::to_lowercase)
        .collect();
    let tokens = tokens(text);
    (0..tokens.len()).find_map(|i| claim_at(&tokens, i, &own))
}

/// The words of `text`: letters, digits and inner apostrophes; a hyphen splits
/// words, any other sign also ends a clause.
fn tokens(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut opens = true;
    // A final '.' closes the last word.
    for c in text.chars().chain(std::iter::once('.')) {
        let c = if c == '\u{2019}' { '\'' } else { c };
        if c.is_alphanumeric() || (c == '\'' && !word.is_empty()) {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            push_word(&mut out, &word, opens);
            word.clear();
            opens = false;
        }
        if c.is_whitespace() || c == '-' {
            continue;
        }
        if let Some(last) = out.last_mut() {
            last.closes = true;
        }
        opens = true;
    }
    out
}

/// Pushes `raw`, split after an elided article or pronoun.
fn push_word(out: &mut Vec<Token>, raw: &str, opens: bool) {
    let raw = raw.trim_end_matches('\'');
    if let Some((head, tail)) = raw.split_once('\'')
        && !tail.is_empty()
        && ELISIONS.contains(&head.to_lowercase().as_str())
    {
        out.push(Token::new(head, opens));
        out.push(Token::new(tail, false));
        return;
    }
    out.push(Token::new(raw, opens));
}

/// Whether the tokens at `i` start with `phrase`'s words; how many.
fn phrase_len(tokens: &[Token], i: usize, phrase: &str) -> Option<usize> {
    let mut n = 0;
    for w in phrase.split_whitespace() {
        if tokens.get(i + n)?.word != w {
            return None;
        }
        n += 1;
    }
    Some(n)
}

/// The longest of `phrases` at `i`, in words.
fn longest(tokens: &[Token], i: usize, phrases: &[&str]) -> Option<usize> {
    phrases
        .iter()
        .filter_map(|p| phrase_len(tokens, i, p))
        .max()
}

fn claim_at(tokens: &[Token], i: usize, own: &[String]) -> Option<Dropped> {
    SUBJECTS.iter().find_map(|&(subject, kind)| {
        let n = phrase_len(tokens, i, subject)?;
        if kind == Kind::As && !opens_clause(tokens, i) {
            return None;
        }
        let negated = subject.split_whitespace().any(|w| NEGATIONS.contains(&w));
        claim(tokens, i + n, kind, negated, own)
    })
}

fn opens_clause(tokens: &[Token], i: usize) -> bool {
    tokens[i].opens
        || i.checked_sub(1)
            .is_some_and(|p| CONJUNCTIONS.contains(&tokens[p].word.as_str()))
}

/// What follows a subject from `start`: a claim after at most [`MAX_SMALL`]
/// small words, or none.
fn claim(
    tokens: &[Token],
    start: usize,
    kind: Kind,
    negated: bool,
    own: &[String],
) -> Option<Dropped> {
    let mut negated = negated;
    let mut may_name = true;
    for (small, k) in (start..tokens.len()).enumerate().take(MAX_SMALL + 1) {
        if let Some(n) = longest(tokens, k, MACHINES) {
            return is_machine_claim(tokens, k, n, kind, small > 0).then_some(SAYS_MACHINE);
        }
        if negated && kind == Kind::Me && longest(tokens, k, HUMANS).is_some() {
            return Some(SAYS_NOT_HUMAN);
        }
        if may_name && is_assistant_claim(tokens, k, kind, own) {
            return Some(SAYS_ASSISTANT);
        }
        let t = &tokens[k];
        let w = t.word.as_str();
        let possessive = POSSESSIVES.contains(&w) || w.ends_with("'s") || w.ends_with("s'");
        // "I'm a Gemini", "I'm your copilot", "I'm the copilot" name no assistant.
        if INDEFINITE.contains(&w) || possessive || w == "the" {
            may_name = false;
        } else if NEGATIONS.contains(&w) {
            negated = true;
        } else if !DEFINITE.contains(&w) && !MODIFIERS.contains(&w) {
            return None;
        }
        if t.closes {
            return None;
        }
    }
    None
}

/// Whether the machine phrase of `n` words at `k` is said of the writer.
fn is_machine_claim(tokens: &[Token], k: usize, n: usize, kind: Kind, after_small: bool) -> bool {
    let head = &tokens[k];
    let last = &tokens[k + n - 1];
    let next = tokens.get(k + n);
    if !last.closes && next.is_some_and(|t| ROLES.contains(&t.word.as_str())) {
        return false;
    }
    let ends = ends_phrase(last, next);
    let acronym = n == 1 && ACRONYMS.contains(&head.word.as_str());
    if acronym && !after_small && !ends {
        return false;
    }
    // "As an AI without rules": after an article, "as" introduces what the
    // writer is; bare, it may start a clause ("as AI gets better").
    kind == Kind::Me || n > 1 || ends || (kind == Kind::As && after_small)
}

/// Whether a known assistant's name at `k` is said of the writer.
fn is_assistant_claim(tokens: &[Token], k: usize, kind: Kind, own: &[String]) -> bool {
    let name = &tokens[k];
    if !ASSISTANTS.contains(&name.word.as_str()) || own.contains(&name.word) {
        return false;
    }
    // A version goes with the name: "GPT-4o", "GPT 3.5".
    let mut last = k;
    while !tokens[last].closes
        && tokens
            .get(last + 1)
            .is_some_and(|t| t.word.chars().any(|c| c.is_ascii_digit()))
    {
        last += 1;
    }
    let next = tokens.get(last + 1);
    if kind == Kind::Me {
        // "Claude Monet" is someone else.
        return tokens[last].closes || !next.is_some_and(|t| t.capital);
    }
    ends_phrase(&tokens[last], next)
}

/// Whether the phrase ending with `last` ends there: punctuation, the end, or
/// a word that starts what comes next.
fn ends_phrase(last: &Token, next: Option<&Token>) -> bool {
    last.closes || next.is_none_or(|t| CLAUSE_WORDS.contains(&t.word.as_str()))
}
