//! The operator in the loop, headless: `mode`, `drafts`, `approve`, `discard`,
//! `send` (the operator's own words) and `ask` (what the twin would answer,
//! sending nothing).

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};
use secondme::config::Config;
use secondme::reply::engine::Engine;
use secondme::store;
use secondme::store::drafts::{self, Decision, Draft, ReplyMode};
use secondme::worker::personas::Personas;
use secondme::worker::preview;

use super::common::connect;
use super::output::{format_ms, printable};
use super::status::terminal_safe_json;

/// Longest reply `ask` prints, in characters.
const MAX_REPLY_SHOWN: usize = 4_000;

/// `secondme mode {auto|draft} CONTACT...` or `--all` (the default).
pub(super) async fn mode(
    config: &Config,
    mode: &str,
    contacts: &[String],
    all: bool,
) -> Result<()> {
    let mode: ReplyMode = mode.parse()?;
    for id in contacts {
        store::ensure_contact_id(id)?;
    }
    let mut con = connect(config).await?;
    if all {
        drafts::set_default_mode(&mut con, mode).await?;
        println!("{mode} mode for every contact without a mode of its own");
    } else {
        drafts::set_mode(&mut con, contacts, mode).await?;
        println!("{mode} mode for {} contact(s)", contacts.len());
    }
    Ok(())
}

/// `secondme drafts [--json]`.
pub(super) async fn list(config: &Config, json: bool) -> Result<()> {
    let waiting = drafts::list(&mut connect(config).await?).await?;
    if json {
        let text = serde_json::to_string(&waiting).context("cannot encode the drafts")?;
        println!("{}", terminal_safe_json(&text));
    } else if waiting.is_empty() {
        println!("no drafts waiting");
    } else {
        print_drafts(&waiting, store::now_ms(), terminal_width());
    }
    Ok(())
}

/// `secondme approve DRAFTID [--text TEXT]`.
pub(super) async fn approve(config: &Config, draft_id: &str, text: Option<&str>) -> Result<()> {
    if text.is_some_and(|t| t.trim().is_empty()) {
        bail!("--text is empty: nothing to send");
    }
    let decision = drafts::approve(&mut connect(config).await?, draft_id, text).await?;
    decided(draft_id, decision, "approved: it goes out now")
}

/// `secondme discard DRAFTID`.
pub(super) async fn discard(config: &Config, draft_id: &str) -> Result<()> {
    let decision = drafts::discard(&mut connect(config).await?, draft_id).await?;
    decided(draft_id, decision, "discarded")
}

/// Says what became of a draft; a draft no longer there is the command's failure.
fn decided(draft_id: &str, decision: Decision, done: &str) -> Result<()> {
    match decision {
        Decision::Done => {
            println!("draft {} {done}", printable(draft_id));
            Ok(())
        }
        Decision::Gone => bail!(
            "draft {} is gone: decided elsewhere, expired, or replaced by a newer draft (see `secondme drafts`)",
            printable(draft_id)
        ),
    }
}

/// `secondme send CONTACT TEXT`: prints the reply id.
pub(super) async fn send(config: &Config, contact: &str, text: &str) -> Result<()> {
    store::ensure_contact_id(contact)?;
    if text.trim().is_empty() {
        bail!("the message is empty: nothing to send");
    }
    let mut con = connect(config).await?;
    // The twin steps back for the `takeover` setting, as when the person types on the phone.
    let reply_id = drafts::send_as_owner_for(&mut con, contact, text, config.takeover).await?;
    println!("{}", printable(&reply_id));
    eprintln!(
        "queued to go out as you; the twin steps back from {contact} as when you type on the phone"
    );
    Ok(())
}

/// `secondme ask CONTACT [TEXT]`: prints the twin's reply, sending nothing.
pub(super) async fn ask(config: &Config, contact: &str, text: Option<&str>) -> Result<()> {
    store::ensure_contact_id(contact)?;
    let mut con = connect(config).await?;
    let engine = Engine::from_config(config.llm.as_ref(), &config.learn)?;
    let mut personas = Personas::new(&config.default_persona, &config.user_id);
    let found = preview::reply(
        &mut con,
        &engine,
        &mut personas,
        &config.learn,
        contact,
        text,
    )
    .await?;
    let Some(p) = found else {
        bail!(
            "no message of {contact} in the history to answer: give one, `secondme ask {contact} TEXT`"
        );
    };
    println!(
        "{}",
        secondme_ui::sanitize::clean_multiline(&p.reply.content, MAX_REPLY_SHOWN)
    );
    eprintln!(
        "(a preview in persona {}: nothing was sent)",
        printable(&p.persona_id)
    );
    Ok(())
}

/// The columns the output may take: the terminal's, else `COLUMNS`; `None`
/// when neither is known (a pipe), and lines are not cut.
fn terminal_width() -> Option<usize> {
    let from_terminal = std::io::stdout()
        .is_terminal()
        .then(crossterm::terminal::size)
        .and_then(Result::ok)
        .map(|(cols, _)| usize::from(cols));
    from_terminal.or_else(|| {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse().ok())
    })
}

/// The drafts as a table, each followed by its content on a line of its own
/// (indented, one line, cut to `width`): ids are long, and the content gets the
/// whole width.
fn print_drafts(waiting: &[Draft], now: i64, width: Option<usize>) {
    for line in draft_lines(waiting, now, width) {
        println!("{line}");
    }
}

/// The lines [`print_drafts`] prints.
fn draft_lines(waiting: &[Draft], now: i64, width: Option<usize>) -> Vec<String> {
    let header = ["DRAFT", "CONTACT", "AGE", "EXPIRES IN"].map(str::to_owned);
    let rows: Vec<[String; 4]> = waiting
        .iter()
        .map(|d| {
            [
                printable(&d.draft_id),
                printable(&d.contact_id),
                format_ms((now - d.created_at).max(0)),
                expires_in(d.expires_at - now),
            ]
        })
        .collect();
    let mut widths = header.each_ref().map(|h| secondme_ui::text::width(h));
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(secondme_ui::text::width(cell));
        }
    }
    let cut = |s: String| match width {
        Some(cols) => secondme_ui::text::truncate(&s, cols),
        None => s,
    };
    let row_line = |cells: &[String; 4]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| secondme_ui::text::fit(c, w))
            .collect();
        cut(padded.join("  ").trim_end().to_owned())
    };
    let mut lines = vec![row_line(&header)];
    for (row, d) in rows.iter().zip(waiting) {
        lines.push(row_line(row));
        lines.push(cut(format!("  {}", printable(&d.content))));
    }
    lines
}

/// How long until a draft expires, or `now` once it is due.
fn expires_in(ms: i64) -> String {
    if ms <= 0 {
        "now".to_owned()
    } else {
        format_ms(ms)
    }
}

#[cfg(test)]
mod tests {
    // The parent by its full path: a `super` path in this folder names a sibling file.
    use crate::cli::drafts::{Draft, draft_lines};

    fn draft(id: &str, content: &str, created_at: i64, expires_at: i64) -> Draft {
        Draft {
            draft_id: id.into(),
            contact_id: "alice".into(),
            content: content.into(),
            in_reply_to: "m1".into(),
            created_at,
            expires_at,
        }
    }

    #[test]
    fn each_draft_is_a_row_then_its_content_made_safe_and_cut_to_the_width() {
        let now = 10_000_000;
        let waiting = [
            draft(
                "draft_m1",
                "see you\n\u{1b}[2Jat 8",
                now - 240_000,
                now + 3_600_000,
            ),
            draft("draft_m22", "漢字漢字漢字漢字漢字漢字", now, now - 1),
        ];
        let lines = draft_lines(&waiting, now, Some(20));
        assert_eq!(
            lines,
            [
                "DRAFT      CONTACT …",
                "draft_m1   alice   …",
                "  see you at 8",
                "draft_m22  alice   …",
                "  漢字漢字漢字漢字…",
            ]
        );
        let wide = draft_lines(&waiting, now, None);
        assert_eq!(wide[0], "DRAFT      CONTACT  AGE  EXPIRES IN");
        assert_eq!(wide[1], "draft_m1   alice    4m   1h00m");
        assert_eq!(wide[3], "draft_m22  alice    0s   now");
        assert_eq!(wide[4], "  漢字漢字漢字漢字漢字漢字");
    }
}
