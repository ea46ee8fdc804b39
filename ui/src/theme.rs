//! Styles. Every piece of meaning also has a modifier or a text label, so
//! the `no_color` theme (NO_COLOR) loses colour but never information.

use ratatui::style::{Color, Modifier, Style};

/// Named styles used by the widgets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Theme {
    /// Theme name as accepted by [`Theme::from_name`].
    pub name: &'static str,
    /// False for `no_color`: widgets must not set any fg/bg colour.
    pub colored: bool,
    /// Ordinary text.
    pub text: Style,
    /// Secondary text (timestamps, hints).
    pub dim: Style,
    /// Pane borders.
    pub border: Style,
    /// Border of the focused pane.
    pub border_focus: Style,
    /// Pane titles.
    pub title: Style,
    /// Highlighted list row.
    pub selected: Style,
    /// Healthy state.
    pub ok: Style,
    /// Needs attention.
    pub warn: Style,
    /// Broken or dangerous.
    pub critical: Style,
    /// The kill-switch banner.
    pub kill_banner: Style,
    /// Messages from the contact.
    pub author_contact: Style,
    /// Messages from the twin.
    pub author_twin: Style,
    /// Messages typed by the person.
    pub author_person: Style,
    /// Key names in hints and help.
    pub key: Style,
    /// Overlay boxes.
    pub overlay: Style,
    /// Paused-contact state text.
    pub paused: Style,
}

impl Default for Theme {
    fn default() -> Theme {
        Theme::dark()
    }
}

const fn fg(c: Color) -> Style {
    Style::new().fg(c)
}

const fn m(modifier: Modifier) -> Style {
    Style::new().add_modifier(modifier)
}

impl Theme {
    /// Colours for dark-background terminals.
    pub fn dark() -> Theme {
        Theme {
            name: "dark",
            colored: true,
            text: Style::new(),
            dim: fg(Color::Gray).add_modifier(Modifier::DIM),
            border: fg(Color::DarkGray),
            border_focus: fg(Color::Cyan).add_modifier(Modifier::BOLD),
            title: m(Modifier::BOLD),
            selected: m(Modifier::REVERSED),
            ok: fg(Color::Green),
            warn: fg(Color::Yellow).add_modifier(Modifier::BOLD),
            critical: fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD),
            kill_banner: fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD),
            author_contact: fg(Color::LightBlue).add_modifier(Modifier::BOLD),
            author_twin: fg(Color::Magenta).add_modifier(Modifier::ITALIC),
            author_person: fg(Color::Green).add_modifier(Modifier::UNDERLINED),
            key: fg(Color::Cyan).add_modifier(Modifier::BOLD),
            overlay: Style::new(),
            paused: fg(Color::Yellow),
        }
    }

    /// Colours for light-background terminals (no light-on-light).
    pub fn light() -> Theme {
        Theme {
            name: "light",
            colored: true,
            text: Style::new(),
            dim: fg(Color::DarkGray),
            border: fg(Color::Gray),
            border_focus: fg(Color::Blue).add_modifier(Modifier::BOLD),
            title: m(Modifier::BOLD),
            selected: m(Modifier::REVERSED),
            ok: fg(Color::Green),
            warn: fg(Color::Rgb(0x9a, 0x5b, 0x00)).add_modifier(Modifier::BOLD),
            critical: fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD),
            kill_banner: fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD),
            author_contact: fg(Color::Blue).add_modifier(Modifier::BOLD),
            author_twin: fg(Color::Magenta).add_modifier(Modifier::ITALIC),
            author_person: fg(Color::Rgb(0x00, 0x70, 0x20)).add_modifier(Modifier::UNDERLINED),
            key: fg(Color::Blue).add_modifier(Modifier::BOLD),
            overlay: Style::new(),
            paused: fg(Color::Rgb(0x9a, 0x5b, 0x00)),
        }
    }

    /// Modifiers only (bold, reverse, underline, dim, italic); for NO_COLOR.
    pub fn no_color() -> Theme {
        Theme {
            name: "no_color",
            colored: false,
            text: Style::new(),
            dim: m(Modifier::DIM),
            border: Style::new(),
            border_focus: m(Modifier::BOLD),
            title: m(Modifier::BOLD),
            selected: m(Modifier::REVERSED),
            ok: Style::new(),
            warn: m(Modifier::BOLD),
            critical: m(Modifier::REVERSED.union(Modifier::BOLD)),
            kill_banner: m(Modifier::REVERSED.union(Modifier::BOLD)),
            author_contact: m(Modifier::BOLD),
            author_twin: m(Modifier::ITALIC),
            author_person: m(Modifier::UNDERLINED),
            key: m(Modifier::BOLD),
            overlay: Style::new(),
            paused: m(Modifier::BOLD),
        }
    }

    /// `dark`, `light`, or `no_color`/`nocolor`/`none`/`mono`; `None` otherwise.
    pub fn from_name(name: &str) -> Option<Theme> {
        match name.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "dark" | "default" => Some(Theme::dark()),
            "light" => Some(Theme::light()),
            "no_color" | "nocolor" | "none" | "mono" | "plain" => Some(Theme::no_color()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(Theme::from_name("Light").map(|t| t.name), Some("light"));
        assert_eq!(
            Theme::from_name("no-color").map(|t| t.name),
            Some("no_color")
        );
        assert!(Theme::from_name("purple").is_none());
    }
}
