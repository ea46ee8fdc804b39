//! `secondme contact list`: the graph's contacts and who answers them.

use anyhow::Result;
use secondme::config::Config;
use secondme::store::optin;
use secondme::{graph, schema};

use super::common::connect_graph;
use super::output::print_table;

/// `secondme contact list`: each contact with its persona, the rule that chose
/// it, and whether the twin answers it.
pub(super) async fn list(config: &Config) -> Result<()> {
    let mut con = connect_graph(config).await?;
    let contacts = graph::contacts(&mut con).await?;
    if contacts.is_empty() {
        println!(
            "no contacts in the graph `{}`: load some with `secondme persona import FILE`",
            schema::graph()
        );
        return Ok(());
    }
    let enabled: std::collections::HashSet<String> =
        optin::enabled(&mut con).await?.into_iter().collect();
    // Every contact's persona in one query rather than one round trip per contact.
    let resolved = graph::resolve_all(&mut con, &config.user_id).await?;
    let mut rows = Vec::with_capacity(contacts.len());
    for c in &contacts {
        let persona = match resolved.by_contact.get(&c.id) {
            Some(r) => format!("{} ({})", r.persona_id, r.rule),
            None => format!("none ({})", graph::GraphError::NoUser),
        };
        // The worker obeys the opt-in set; show the graph's value only when it disagrees.
        let on = enabled.contains(&c.id);
        let mut bot = if on { "on" } else { "off" }.to_owned();
        if on != c.bot_enabled {
            bot.push_str(if c.bot_enabled {
                " (graph: on)"
            } else {
                " (graph: off)"
            });
        }
        rows.push(vec![
            c.id.clone(),
            c.name.clone().unwrap_or_else(|| "-".into()),
            c.relationship_type.clone(),
            persona,
            bot,
        ]);
    }
    print_table(
        &["ID", "NAME", "RELATIONSHIP", "PERSONA (RULE)", "BOT"],
        &rows,
    );
    Ok(())
}
