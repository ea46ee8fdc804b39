//! `secondme eval`: how close the twin writes to the owner. For each contact, the
//! owner's last replies are held out, the twin learns from the rest and answers
//! each held-out message, and so does a baseline without learning; both are
//! measured against the real replies. Only figures are printed, never the text.

use anyhow::{Context, Result, bail};
use secondme::config::Config;
use secondme::connection::Con;
use secondme::learn::context::ChatModel;
use secondme::learn::eval::{self, EvalReport, Generated, Split};
use secondme::learn::{ChatLine, Exchange, LineKind};
use secondme::reply::engine::Engine;
use secondme::reply::input::{HistoryTurn, QueueMessage, Speaker};
use secondme::reply::{ReplyEngine, ReplyRequest};
use secondme::schema::Direction;
use secondme::store::{self, learned};
use secondme::worker::personas::{ContactPersona, Personas};

use super::common::connect;
use super::output::{print_table, printable};
use super::progress::Progress;
use super::status::terminal_safe_json;

/// What `secondme eval` was asked.
#[derive(Debug, Clone)]
pub(super) struct EvalArgs {
    /// One contact, else every learned contact.
    pub(super) contact: Option<String>,
    /// Replies held out per contact.
    pub(super) holdout: usize,
    /// One JSON object per contact instead of the tables.
    pub(super) json: bool,
}

/// What one contact's eval shares: the engine, the persona resolver and how to
/// show progress.
struct Run<'a> {
    config: &'a Config,
    con: Con,
    engine: Engine,
    personas: Personas,
    progress: bool,
    /// Nothing on stderr (the demo evaluates behind the control room's screen).
    quiet: bool,
}

/// `secondme eval [--contact ID] [--holdout N] [--json]`.
pub(super) async fn run(config: &Config, args: EvalArgs) -> Result<()> {
    let mut con = connect(config).await?;
    let contacts = match &args.contact {
        Some(c) => {
            store::ensure_contact_id(c)?;
            vec![c.clone()]
        }
        None => learned::contacts(&mut con).await?,
    };
    if contacts.is_empty() {
        bail!("nothing is learned yet: import a chat first with `secondme learn FILE --me NAME`");
    }
    let mut run = Run {
        config,
        con,
        engine: Engine::from_config(config.llm.as_ref(), &config.learn)?,
        personas: Personas::new(&config.default_persona, &config.user_id),
        progress: !args.json,
        quiet: false,
    };
    let mut evaluated = 0;
    for contact in &contacts {
        match run.contact(contact, args.holdout).await {
            Ok(report) => {
                let value = serde_json::to_value(&report).context("cannot encode the eval")?;
                learned::save_eval(&mut run.con, contact, &value).await?;
                if args.json {
                    // From the report, not the value: the fields in their documented order.
                    let text = serde_json::to_string(&report).context("cannot encode the eval")?;
                    println!("{}", terminal_safe_json(&text));
                } else {
                    print_report(&report);
                }
                evaluated += 1;
            }
            // With one contact asked for, its failure is the command's.
            Err(e) if args.contact.is_some() => return Err(e),
            Err(e) => eprintln!("{}", not_evaluated(contact, &e)),
        }
    }
    if evaluated == 0 {
        bail!("no contact could be evaluated");
    }
    Ok(())
}

/// Why `contact` was not evaluated, made printable whole: the error may quote
/// what another program wrote in Redis.
fn not_evaluated(contact: &str, e: &anyhow::Error) -> String {
    let why = secondme_ui::sanitize::clean(&format!("{e:#}"), 2_000);
    format!("{}: not evaluated: {why}", printable(contact))
}

/// Evaluates `contact` with the default holdout and saves the result, printing
/// nothing: the demo does it behind its screen, so a newcomer sees a fidelity
/// figure without running `secondme eval`.
pub(super) async fn save_quietly(config: &Config, contact: &str) -> Result<()> {
    let mut run = Run {
        config,
        con: connect(config).await?,
        engine: Engine::from_config(config.llm.as_ref(), &config.learn)?,
        personas: Personas::new(&config.default_persona, &config.user_id),
        progress: false,
        quiet: true,
    };
    let report = run.contact(contact, eval::DEFAULT_HOLDOUT).await?;
    let value = serde_json::to_value(&report).context("cannot encode the eval")?;
    learned::save_eval(&mut run.con, contact, &value).await
}

impl Run<'_> {
    /// The eval of one contact.
    async fn contact(&mut self, contact: &str, holdout: usize) -> Result<EvalReport> {
        let lines = learned::lines(&mut self.con, contact).await?;
        if lines.is_empty() {
            bail!("nothing is learned for this contact");
        }
        let split = eval::split(&lines, holdout)?;
        if split.reduced() && !self.quiet {
            eprintln!(
                "{}: the chat is short: holding out {} replies instead of {}, to learn from as many",
                printable(contact),
                split.held_out.len(),
                split.requested
            );
        }
        let persona = self.personas.for_contact(&mut self.con, contact).await?;
        let generated = self.generate(contact, &split, &persona).await;
        if !self.quiet {
            report_failures(contact, &generated);
        }
        EvalReport::score(contact, &generated.items, store::now_ms())
            .context("every generation failed: no reply to compare")
    }

    /// The twin's and the baseline's reply to every held-out message.
    async fn generate(
        &self,
        contact: &str,
        split: &Split<'_>,
        persona: &ContactPersona,
    ) -> Outcome {
        let model = ChatModel::new(split.training);
        let history = history(split.training, self.engine.history_len());
        let total = 2 * split.held_out.len();
        let mut bar = Progress::new(&printable(contact), total as u64, self.progress);
        let mut out = Outcome::default();
        for (i, exchange) in split.held_out.iter().enumerate() {
            let message = held_out_message(contact, i, exchange);
            // The overall counts hold the held-out replies too: none of them is learned.
            let learned = model.learned_for(&exchange.them, self.config.learn.examples, None);
            let baseline = base_request(&message, persona);
            let twin = ReplyRequest {
                history: &history,
                learned: Some(&learned),
                ..baseline.clone()
            };
            let twin = out.keep(self.engine.reply(&twin).await);
            bar.set((2 * i + 1) as u64);
            let baseline = out.keep(self.engine.reply(&baseline).await);
            bar.set((2 * i + 2) as u64);
            out.items.push(Generated {
                real: exchange.me.clone(),
                twin,
                baseline,
            });
        }
        bar.finish();
        out
    }
}

/// The baseline's request: the message, the persona and the contact, nothing
/// learned and no history; the twin's adds both.
fn base_request<'a>(message: &'a QueueMessage, persona: &'a ContactPersona) -> ReplyRequest<'a> {
    ReplyRequest {
        message,
        persona_id: &persona.persona_id,
        persona: &persona.style,
        context: persona.context.as_ref(),
        history: &[],
        learned: None,
    }
}

/// The generations of one contact and the failures among them.
#[derive(Default)]
struct Outcome {
    items: Vec<Generated>,
    failed: usize,
    first_error: Option<String>,
}

impl Outcome {
    /// The reply's text, or `None` counted as a failure.
    fn keep(&mut self, reply: Result<secondme::reply::Reply>) -> Option<String> {
        match reply {
            Ok(r) => Some(r.content),
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert_with(|| format!("{e:#}"));
                None
            }
        }
    }
}

/// Says how many generations failed and the first reason (an engine's error
/// never holds the chat's text).
fn report_failures(contact: &str, outcome: &Outcome) {
    if let Some(e) = &outcome.first_error {
        eprintln!(
            "{}: {} of {} generations failed (first: {}); an exchange counts only when both sides answered",
            printable(contact),
            outcome.failed,
            2 * outcome.items.len(),
            printable(e)
        );
    }
}

/// The held-out message as the worker would have read it from the queue.
fn held_out_message(contact: &str, i: usize, exchange: &Exchange) -> QueueMessage {
    QueueMessage {
        message_id: format!("eval-{i}"),
        contact_id: contact.to_owned(),
        content: exchange.them.clone(),
        timestamp: exchange.ts - exchange.reply_ms.unwrap_or(0),
        direction: Direction::Incoming,
        from_me: false,
    }
}

/// The last `n` text messages of the training chat, as the conversation so far.
fn history(training: &[ChatLine], n: usize) -> Vec<HistoryTurn> {
    let texts: Vec<(usize, &ChatLine)> = training
        .iter()
        .enumerate()
        .filter(|(_, l)| l.kind == LineKind::Text)
        .collect();
    texts[texts.len().saturating_sub(n)..]
        .iter()
        .map(|(i, l)| HistoryTurn {
            message_id: format!("eval-history-{i}"),
            speaker: if l.me {
                Speaker::Owner
            } else {
                Speaker::Contact
            },
            text: l.text.clone(),
            timestamp: l.ts,
        })
        .collect()
}

/// The table of one contact: each measure for the owner, the twin and the
/// baseline, then the summary.
fn print_report(report: &EvalReport) {
    println!(
        "{}: {} held-out replies",
        printable(&report.contact),
        report.holdout
    );
    let figure = |x: f64| format!("{x:.2}");
    let mut rows: Vec<Vec<String>> = report
        .table()
        .into_iter()
        .map(|r| {
            vec![
                r.measure,
                figure(r.owner),
                figure(r.twin),
                r.baseline.map_or_else(|| "-".to_owned(), figure),
            ]
        })
        .collect();
    rows.push(vec![
        "style_distance (lower is closer)".to_owned(),
        "-".to_owned(),
        figure(report.twin.style_distance),
        figure(report.baseline.style_distance),
    ]);
    print_table(&["measure", "owner", "twin", "baseline"], &rows);
    println!();
}

#[cfg(test)]
mod tests {
    // The parent by its full path: a `super` path in this folder names a sibling file.
    use crate::cli::eval::not_evaluated;

    #[test]
    fn why_a_contact_was_not_evaluated_cannot_drive_the_terminal() {
        let e = anyhow::anyhow!("LEARN:chat:c holds \u{1b}]0;owned\u{7}\u{1b}[31mred\nand more")
            .context("cannot read c");
        let said = not_evaluated("c\u{1b}[2J", &e);
        assert!(!said.chars().any(char::is_control), "{said:?}");
        assert!(
            said.starts_with("c: not evaluated: cannot read c"),
            "{said:?}"
        );
        assert!(said.contains("red"), "{said:?}");
    }
}
