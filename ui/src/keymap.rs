//! Keys: a terminal-independent key type and the configurable bindings.

use ratatui::crossterm::event::{KeyCode as CtKeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// A key without modifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyCode {
    /// A printable character (case carries shift).
    Char(char),
    /// Enter / Return.
    Enter,
    /// Escape.
    Esc,
    /// Backspace.
    Backspace,
    /// Delete.
    Delete,
    /// Tab.
    Tab,
    /// Shift-Tab.
    BackTab,
    /// Arrow up.
    Up,
    /// Arrow down.
    Down,
    /// Arrow left.
    Left,
    /// Arrow right.
    Right,
    /// Page up.
    PageUp,
    /// Page down.
    PageDown,
    /// Home.
    Home,
    /// End.
    End,
    /// Function key F1..F24.
    F(u8),
    /// Anything the dashboard does not use.
    Other,
}

/// A key press with the modifiers the dashboard cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyInput {
    /// The key.
    pub code: KeyCode,
    /// Control held.
    pub ctrl: bool,
    /// Alt held.
    pub alt: bool,
    /// Shift held; always false for `Char`, whose case already says it.
    pub shift: bool,
}

impl KeyInput {
    /// A key with no modifiers.
    pub const fn plain(code: KeyCode) -> KeyInput {
        KeyInput {
            code,
            ctrl: false,
            alt: false,
            shift: false,
        }
    }

    /// A character key with no modifiers.
    pub const fn char(c: char) -> KeyInput {
        KeyInput::plain(KeyCode::Char(c))
    }

    /// Control plus a character.
    pub const fn ctrl(c: char) -> KeyInput {
        KeyInput {
            code: KeyCode::Char(c),
            ctrl: true,
            alt: false,
            shift: false,
        }
    }

    /// Converts a crossterm event, ignoring key releases.
    pub fn from_crossterm(ev: KeyEvent) -> Option<KeyInput> {
        (ev.kind != KeyEventKind::Release).then(|| KeyInput::from(ev))
    }

    /// Text for the help screen, e.g. `ctrl-c`, `K`, `pgdown`.
    pub fn display(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::F(n) => format!("f{n}"),
            code => named_key(code).to_string(),
        };
        let mut out = String::new();
        if self.ctrl {
            out.push_str("ctrl-");
        }
        if self.alt {
            out.push_str("alt-");
        }
        if self.shift {
            out.push_str("shift-");
        }
        out + &base
    }
}

fn named_key(code: KeyCode) -> &'static str {
    match code {
        KeyCode::Enter => "enter",
        KeyCode::Esc => "esc",
        KeyCode::Backspace => "backspace",
        KeyCode::Delete => "delete",
        KeyCode::Tab => "tab",
        KeyCode::BackTab => "backtab",
        KeyCode::Up => "up",
        KeyCode::Down => "down",
        KeyCode::Left => "left",
        KeyCode::Right => "right",
        KeyCode::PageUp => "pgup",
        KeyCode::PageDown => "pgdown",
        KeyCode::Home => "home",
        KeyCode::End => "end",
        KeyCode::Char(_) | KeyCode::F(_) | KeyCode::Other => "?",
    }
}

impl From<KeyEvent> for KeyInput {
    fn from(ev: KeyEvent) -> KeyInput {
        let code = match ev.code {
            CtKeyCode::Char(c) => KeyCode::Char(c),
            CtKeyCode::Enter => KeyCode::Enter,
            CtKeyCode::Esc => KeyCode::Esc,
            CtKeyCode::Backspace => KeyCode::Backspace,
            CtKeyCode::Delete => KeyCode::Delete,
            CtKeyCode::Tab => KeyCode::Tab,
            CtKeyCode::BackTab => KeyCode::BackTab,
            CtKeyCode::Up => KeyCode::Up,
            CtKeyCode::Down => KeyCode::Down,
            CtKeyCode::Left => KeyCode::Left,
            CtKeyCode::Right => KeyCode::Right,
            CtKeyCode::PageUp => KeyCode::PageUp,
            CtKeyCode::PageDown => KeyCode::PageDown,
            CtKeyCode::Home => KeyCode::Home,
            CtKeyCode::End => KeyCode::End,
            CtKeyCode::F(n) => KeyCode::F(n),
            _ => KeyCode::Other,
        };
        // Shift is folded into the character (and into BackTab) so that "K"
        // matches whether or not the terminal reports the modifier.
        let shift_matters = !matches!(code, KeyCode::Char(_) | KeyCode::BackTab);
        KeyInput {
            code,
            ctrl: ev.modifiers.contains(KeyModifiers::CONTROL),
            alt: ev.modifiers.contains(KeyModifiers::ALT),
            shift: shift_matters && ev.modifiers.contains(KeyModifiers::SHIFT),
        }
    }
}

/// Things a key can be bound to in normal mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAction {
    /// Move selection / scroll up.
    Up,
    /// Move selection / scroll down.
    Down,
    /// Move a page up.
    PageUp,
    /// Move a page down.
    PageDown,
    /// Jump to the first item.
    Top,
    /// Jump to the last item.
    Bottom,
    /// Focus the next pane.
    NextPane,
    /// Focus the previous pane.
    PrevPane,
    /// Pause the selected contact (opens a prompt).
    Pause,
    /// Resume the selected contact.
    Resume,
    /// Enable or disable the selected contact.
    ToggleEnabled,
    /// Toggle the global kill switch (asks first).
    KillSwitch,
    /// Type a contact filter.
    Filter,
    /// Show all bindings.
    Help,
    /// Ask the WhatsApp gateway for new login codes (only after they ran out).
    NewCodes,
    /// Show or hide what the twin learned for the selected contact.
    Learned,
    /// Send the selected contact's draft as written (even while paused).
    Approve,
    /// Edit the selected contact's draft in the editor; Enter sends it.
    EditDraft,
    /// Drop the selected contact's draft unsent.
    Discard,
    /// Ask for a new draft for the selected contact.
    Regenerate,
    /// Switch the selected contact between auto and draft mode.
    ToggleMode,
    /// Write to the selected contact as yourself.
    Compose,
    /// Show what the twin would answer the selected contact now.
    Preview,
    /// The operator saw the selected contact's unanswered messages: clear its count.
    DismissUnanswered,
    /// Quit after draining the worker.
    Quit,
}

impl KeyAction {
    /// Every action, in help-screen order.
    pub const ALL: [KeyAction; 25] = [
        KeyAction::Up,
        KeyAction::Down,
        KeyAction::PageUp,
        KeyAction::PageDown,
        KeyAction::Top,
        KeyAction::Bottom,
        KeyAction::NextPane,
        KeyAction::PrevPane,
        KeyAction::Pause,
        KeyAction::Resume,
        KeyAction::ToggleEnabled,
        KeyAction::KillSwitch,
        KeyAction::Filter,
        KeyAction::Help,
        KeyAction::NewCodes,
        KeyAction::Learned,
        KeyAction::Approve,
        KeyAction::EditDraft,
        KeyAction::Discard,
        KeyAction::Regenerate,
        KeyAction::ToggleMode,
        KeyAction::Compose,
        KeyAction::Preview,
        KeyAction::DismissUnanswered,
        KeyAction::Quit,
    ];

    /// Config name, e.g. `page_down`, `kill_switch`.
    pub fn name(self) -> &'static str {
        match self {
            KeyAction::Up => "up",
            KeyAction::Down => "down",
            KeyAction::PageUp => "page_up",
            KeyAction::PageDown => "page_down",
            KeyAction::Top => "top",
            KeyAction::Bottom => "bottom",
            KeyAction::NextPane => "next_pane",
            KeyAction::PrevPane => "prev_pane",
            KeyAction::Pause => "pause",
            KeyAction::Resume => "resume",
            KeyAction::ToggleEnabled => "toggle_enabled",
            KeyAction::KillSwitch => "kill_switch",
            KeyAction::Filter => "filter",
            KeyAction::Help => "help",
            KeyAction::NewCodes => "new_codes",
            KeyAction::Learned => "learned",
            KeyAction::Approve => "approve",
            KeyAction::EditDraft => "edit_draft",
            KeyAction::Discard => "discard",
            KeyAction::Regenerate => "regenerate",
            KeyAction::ToggleMode => "toggle_mode",
            KeyAction::Compose => "compose",
            KeyAction::Preview => "preview",
            KeyAction::DismissUnanswered => "dismiss_unanswered",
            KeyAction::Quit => "quit",
        }
    }

    /// One-line description for the help screen.
    pub fn description(self) -> &'static str {
        match self {
            KeyAction::Up => "move up / scroll up",
            KeyAction::Down => "move down / scroll down",
            KeyAction::PageUp => "page up",
            KeyAction::PageDown => "page down",
            KeyAction::Top => "first / oldest",
            KeyAction::Bottom => "last / newest",
            KeyAction::NextPane => "next pane",
            KeyAction::PrevPane => "previous pane",
            KeyAction::Pause => "pause contact",
            KeyAction::Resume => "resume contact",
            KeyAction::ToggleEnabled => "enable/disable contact",
            KeyAction::KillSwitch => "kill switch on/off",
            KeyAction::Filter => "filter contacts",
            KeyAction::Help => "this help",
            KeyAction::NewCodes => "new login codes (ran out)",
            KeyAction::Learned => "what the twin learned",
            KeyAction::Approve => "send draft (even if paused)",
            KeyAction::EditDraft => "edit the draft, enter sends",
            KeyAction::Discard => "discard the draft",
            KeyAction::Regenerate => "ask for a new draft",
            KeyAction::ToggleMode => "auto / draft mode",
            KeyAction::Compose => "write as yourself",
            KeyAction::Preview => "what the twin would say",
            KeyAction::DismissUnanswered => "seen: clear unanswered ✉",
            KeyAction::Quit => "quit",
        }
    }

    /// Parses a config name; accepts `-` for `_`.
    pub fn from_name(name: &str) -> Option<KeyAction> {
        let norm = name.trim().to_ascii_lowercase().replace('-', "_");
        KeyAction::ALL.into_iter().find(|a| a.name() == norm)
    }
}

/// Key bindings: each action has one or more keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keymap {
    bindings: Vec<(KeyAction, Vec<KeyInput>)>,
}

impl Default for Keymap {
    fn default() -> Keymap {
        use KeyCode as K;
        let p = KeyInput::plain;
        let c = KeyInput::char;
        let bindings = vec![
            (KeyAction::Up, vec![p(K::Up), c('k')]),
            (KeyAction::Down, vec![p(K::Down), c('j')]),
            (KeyAction::PageUp, vec![p(K::PageUp)]),
            (KeyAction::PageDown, vec![p(K::PageDown)]),
            (KeyAction::Top, vec![p(K::Home), c('g')]),
            (KeyAction::Bottom, vec![p(K::End), c('G')]),
            (KeyAction::NextPane, vec![p(K::Tab)]),
            (KeyAction::PrevPane, vec![p(K::BackTab)]),
            (KeyAction::Pause, vec![c('p')]),
            (KeyAction::Resume, vec![c('r')]),
            (KeyAction::ToggleEnabled, vec![c('e')]),
            (KeyAction::KillSwitch, vec![c('K')]),
            (KeyAction::Filter, vec![c('/')]),
            (KeyAction::Help, vec![c('?')]),
            (KeyAction::NewCodes, vec![c('n')]),
            (KeyAction::Learned, vec![c('l')]),
            (KeyAction::Approve, vec![c('a')]),
            (KeyAction::EditDraft, vec![c('i')]),
            (KeyAction::Discard, vec![c('x')]),
            (KeyAction::Regenerate, vec![c('R')]),
            (KeyAction::ToggleMode, vec![c('m')]),
            (KeyAction::Compose, vec![c('c')]),
            (KeyAction::Preview, vec![c('w')]),
            (KeyAction::DismissUnanswered, vec![c('u')]),
            (KeyAction::Quit, vec![c('q'), KeyInput::ctrl('c')]),
        ];
        Keymap { bindings }
    }
}

/// Actions whose default keys came after users had configs: a user's binding
/// of the same key takes it from them instead of being refused.
const YIELDING: &[KeyAction] = &[
    KeyAction::NewCodes,
    KeyAction::Learned,
    KeyAction::Approve,
    KeyAction::EditDraft,
    KeyAction::Discard,
    KeyAction::Regenerate,
    KeyAction::ToggleMode,
    KeyAction::Compose,
    KeyAction::Preview,
    KeyAction::DismissUnanswered,
];

impl Keymap {
    /// Defaults with some actions rebound, from `(action_name, keys)` pairs.
    ///
    /// `keys` is one key or several separated by spaces or commas, e.g.
    /// `"p"`, `"K"`, `"ctrl-c"`, `"pgdown"`, `"tab"`, `"k, up"`. A rebound
    /// action loses its default keys. Fails on unknown actions or keys and on
    /// a key bound to two actions.
    pub fn from_overrides(overrides: &[(String, String)]) -> Result<Keymap, String> {
        let mut map = Keymap::default();
        let mut chosen: Vec<KeyAction> = Vec::new();
        for (action_name, keys) in overrides {
            let action = KeyAction::from_name(action_name)
                .ok_or_else(|| format!("unknown key action {action_name:?}"))?;
            let parsed = parse_key_list(keys).map_err(|e| format!("{action_name}: {e}"))?;
            if let Some(slot) = map.bindings.iter_mut().find(|(a, _)| *a == action) {
                slot.1 = parsed;
            }
            chosen.push(action);
        }
        map.yield_to(&chosen);
        map.check_conflicts()?;
        Ok(map)
    }

    /// A key the user gave an action leaves the default binding of an action
    /// added after configs existed ([`YIELDING`]), so an upgrade never makes a
    /// working config invalid; any other clash, with the user's bindings or
    /// the defaults, is still refused (an action like quit, help or the kill
    /// switch must never lose its key quietly).
    fn yield_to(&mut self, chosen: &[KeyAction]) {
        let taken: Vec<KeyInput> = self
            .bindings
            .iter()
            .filter(|(a, _)| chosen.contains(a))
            .flat_map(|(_, keys)| keys.iter().copied())
            .collect();
        for (action, keys) in &mut self.bindings {
            if YIELDING.contains(action) && !chosen.contains(action) {
                keys.retain(|k| !taken.contains(k));
            }
        }
    }

    fn check_conflicts(&self) -> Result<(), String> {
        let mut seen: Vec<(KeyInput, KeyAction)> = Vec::new();
        for (action, keys) in &self.bindings {
            for key in keys {
                if let Some((_, other)) = seen.iter().find(|(k, a)| k == key && a != action) {
                    return Err(format!(
                        "key {} is bound to both {} and {}",
                        key.display(),
                        other.name(),
                        action.name()
                    ));
                }
                seen.push((*key, *action));
            }
        }
        Ok(())
    }

    /// The action bound to `key`, if any.
    pub fn action_for(&self, key: &KeyInput) -> Option<KeyAction> {
        self.bindings
            .iter()
            .find(|(_, keys)| keys.contains(key))
            .map(|(a, _)| *a)
    }

    /// Keys bound to `action`.
    pub fn keys_for(&self, action: KeyAction) -> &[KeyInput] {
        self.bindings
            .iter()
            .find(|(a, _)| *a == action)
            .map_or(&[], |(_, k)| k.as_slice())
    }

    /// Keys of `action` joined for display, e.g. `k/up`.
    pub fn keys_label(&self, action: KeyAction) -> String {
        let keys: Vec<String> = self
            .keys_for(action)
            .iter()
            .map(KeyInput::display)
            .collect();
        if keys.is_empty() {
            "(unbound)".to_string()
        } else {
            keys.join("/")
        }
    }

    /// All bindings in help order.
    pub fn bindings(&self) -> &[(KeyAction, Vec<KeyInput>)] {
        &self.bindings
    }
}

fn parse_key_list(s: &str) -> Result<Vec<KeyInput>, String> {
    let keys: Vec<KeyInput> = s
        .split([' ', ','])
        .filter(|t| !t.is_empty())
        .map(parse_key)
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err("no key given".to_string());
    }
    Ok(keys)
}

/// Parses one key such as `p`, `K`, `ctrl-c`, `alt-x`, `pgdown`, `f5`.
pub fn parse_key(s: &str) -> Result<KeyInput, String> {
    let mut key = KeyInput::plain(KeyCode::Other);
    let mut rest = s.trim();
    loop {
        let lower = rest.to_ascii_lowercase();
        if let Some(r) = strip_modifier(&lower, &["ctrl-", "c-", "control-"]) {
            key.ctrl = true;
            rest = &rest[rest.len() - r.len()..];
        } else if let Some(r) = strip_modifier(&lower, &["alt-", "a-", "m-", "meta-"]) {
            key.alt = true;
            rest = &rest[rest.len() - r.len()..];
        } else if let Some(r) = strip_modifier(&lower, &["shift-", "s-"]) {
            key.shift = true;
            rest = &rest[rest.len() - r.len()..];
        } else {
            break;
        }
    }
    key.code = parse_code(rest).ok_or_else(|| format!("unknown key {s:?}"))?;
    normalize_shift(&mut key);
    Ok(key)
}

fn strip_modifier<'a>(lower: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    // A bare "c-" would make "c" unusable, so a modifier needs something after it.
    prefixes
        .iter()
        .find_map(|p| lower.strip_prefix(p))
        .filter(|r| !r.is_empty())
}

fn normalize_shift(key: &mut KeyInput) {
    match key.code {
        KeyCode::Char(c) if key.shift => {
            key.code = KeyCode::Char(c.to_ascii_uppercase());
            key.shift = false;
        }
        KeyCode::Tab if key.shift => {
            key.code = KeyCode::BackTab;
            key.shift = false;
        }
        // Terminals send ctrl-letters in lower case.
        KeyCode::Char(c) if key.ctrl => key.code = KeyCode::Char(c.to_ascii_lowercase()),
        _ => {}
    }
}

fn parse_code(s: &str) -> Option<KeyCode> {
    let mut chars = s.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return (!c.is_control()).then_some(KeyCode::Char(c));
    }
    let lower = s.to_ascii_lowercase();
    let code = match lower.as_str() {
        "enter" | "return" => KeyCode::Enter,
        "esc" | "escape" => KeyCode::Esc,
        "backspace" | "bs" => KeyCode::Backspace,
        "delete" | "del" => KeyCode::Delete,
        "tab" => KeyCode::Tab,
        "backtab" => KeyCode::BackTab,
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "pgup" | "pageup" | "page_up" => KeyCode::PageUp,
        "pgdown" | "pgdn" | "pagedown" | "page_down" => KeyCode::PageDown,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        "space" => KeyCode::Char(' '),
        "comma" => KeyCode::Char(','),
        _ => return parse_function_key(&lower),
    };
    Some(code)
}

fn parse_function_key(lower: &str) -> Option<KeyCode> {
    let n: u8 = lower.strip_prefix('f')?.parse().ok()?;
    (1..=24).contains(&n).then_some(KeyCode::F(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys() {
        assert_eq!(parse_key("p"), Ok(KeyInput::char('p')));
        assert_eq!(parse_key("K"), Ok(KeyInput::char('K')));
        assert_eq!(parse_key("shift-k"), Ok(KeyInput::char('K')));
        assert_eq!(parse_key("ctrl-c"), Ok(KeyInput::ctrl('c')));
        assert_eq!(parse_key("Ctrl-C"), Ok(KeyInput::ctrl('c')));
        assert_eq!(parse_key("pgdown"), Ok(KeyInput::plain(KeyCode::PageDown)));
        assert_eq!(parse_key("tab"), Ok(KeyInput::plain(KeyCode::Tab)));
        assert_eq!(
            parse_key("shift-tab"),
            Ok(KeyInput::plain(KeyCode::BackTab))
        );
        assert_eq!(parse_key("f5"), Ok(KeyInput::plain(KeyCode::F(5))));
        assert_eq!(parse_key("c"), Ok(KeyInput::char('c')));
        assert_eq!(parse_key("-"), Ok(KeyInput::char('-')));
        assert!(parse_key("banana").is_err());
        assert!(parse_key("").is_err());
        assert!(parse_key("f99").is_err());
    }

    #[test]
    fn display_round_trips() {
        for (_, keys) in Keymap::default().bindings() {
            for k in keys {
                assert_eq!(parse_key(&k.display()), Ok(*k), "{}", k.display());
            }
        }
    }

    #[test]
    fn crossterm_conversion_folds_shift() {
        let ev = KeyEvent::new(CtKeyCode::Char('K'), KeyModifiers::SHIFT);
        assert_eq!(KeyInput::from(ev), KeyInput::char('K'));
        let ev = KeyEvent::new(CtKeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(KeyInput::from(ev), KeyInput::ctrl('c'));
        let ev = KeyEvent::new(CtKeyCode::BackTab, KeyModifiers::SHIFT);
        assert_eq!(KeyInput::from(ev), KeyInput::plain(KeyCode::BackTab));
    }

    #[test]
    fn a_users_key_wins_over_a_default_added_later() {
        // A config from before `n` asked for new login codes still loads.
        let map = Keymap::from_overrides(&[("resume".into(), "n".into())]).unwrap();
        assert_eq!(
            map.action_for(&KeyInput::char('n')),
            Some(KeyAction::Resume)
        );
        assert!(map.keys_for(KeyAction::NewCodes).is_empty());
        assert_eq!(map.keys_label(KeyAction::NewCodes), "(unbound)");
        // So does one from before `l` showed what the twin learned.
        let map = Keymap::from_overrides(&[("filter".into(), "l".into())]).unwrap();
        assert_eq!(
            map.action_for(&KeyInput::char('l')),
            Some(KeyAction::Filter)
        );
        assert!(map.keys_for(KeyAction::Learned).is_empty());
        // A key of an older default is still a clash: help, the kill switch
        // or resume never lose their key quietly.
        for (action, key) in [("filter", "?"), ("bottom", "K"), ("pause", "r")] {
            assert!(
                Keymap::from_overrides(&[(action.into(), key.into())]).is_err(),
                "{action} = {key}"
            );
        }
    }

    #[test]
    fn a_config_from_before_drafts_still_loads() {
        // Every draft key given to an older action: the draft action yields it.
        let older = [
            ("pause", "a"),
            ("resume", "i"),
            ("filter", "x"),
            ("kill_switch", "R"),
            ("help", "m"),
            ("toggle_enabled", "c"),
            ("bottom", "w"),
        ];
        let overrides: Vec<(String, String)> = older
            .iter()
            .map(|(a, k)| ((*a).to_owned(), (*k).to_owned()))
            .collect();
        let map = Keymap::from_overrides(&overrides).unwrap();
        for (action, key) in older {
            let key = parse_key(key).unwrap();
            assert_eq!(
                map.action_for(&key),
                KeyAction::from_name(action),
                "{action}"
            );
        }
        for action in [
            KeyAction::Approve,
            KeyAction::EditDraft,
            KeyAction::Discard,
            KeyAction::Regenerate,
            KeyAction::ToggleMode,
            KeyAction::Compose,
            KeyAction::Preview,
        ] {
            assert!(map.keys_for(action).is_empty(), "{}", action.name());
        }
        // The draft keys clash with no older default.
        let defaults = Keymap::default();
        for key in ["a", "i", "x", "R", "m", "c", "w"] {
            let action = defaults.action_for(&parse_key(key).unwrap());
            assert!(action.is_some_and(|a| YIELDING.contains(&a)), "{key}");
        }
    }

    #[test]
    fn overrides_replace_and_detect_conflicts() {
        let map = Keymap::from_overrides(&[("pause".into(), "P, f2".into())]).unwrap();
        assert_eq!(map.action_for(&KeyInput::char('P')), Some(KeyAction::Pause));
        assert_eq!(map.action_for(&KeyInput::char('p')), None);
        // Two of the user's own bindings on one key clash.
        assert!(
            Keymap::from_overrides(&[("pause".into(), "x".into()), ("resume".into(), "x".into())])
                .is_err()
        );
        assert!(Keymap::from_overrides(&[("nope".into(), "x".into())]).is_err());
        assert!(Keymap::from_overrides(&[("pause".into(), "".into())]).is_err());
    }
}
