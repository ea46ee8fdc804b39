//! `secondme persona import` and `secondme persona list`: personas in the graph.

use anyhow::Result;
use secondme::config::Config;
use secondme::graph::{self, GraphFile};
use secondme::schema;

use super::common::connect_graph;
use super::output::{list_or_none, print_table, printable};

/// `secondme persona import FILE`: loads the graph file and says what changed.
pub(super) async fn import(config: &Config, path: &std::path::Path) -> Result<()> {
    let file = GraphFile::load(path)?;
    let mut con = connect_graph(config).await?;
    let s = graph::import(&mut con, &file).await?;
    println!(
        "imported {} into the graph `{}`",
        path.display(),
        schema::graph()
    );
    println!(
        "  user      {} (default persona {})",
        printable(&s.user),
        printable(&file.user.default_persona)
    );
    println!("  personas  {}", printable(&list_or_none(&s.personas)));
    println!("  contacts  {}", printable(&list_or_none(&s.contacts)));
    println!(
        "  knows     {} person link(s), {} topic mention(s)",
        s.people, s.mentions
    );
    println!(
        "  changes   {} node(s) and {} relationship(s) created, {} propert{} set{}",
        s.nodes_created,
        s.relationships_created,
        s.properties_set,
        if s.properties_set == 1 { "y" } else { "ies" },
        if s.nodes_created == 0 && s.relationships_created == 0 {
            " (the graph already held every node and relationship)"
        } else {
            ""
        }
    );
    Ok(())
}

/// `secondme persona list`: the personas, the user's default marked.
pub(super) async fn list(config: &Config) -> Result<()> {
    let mut con = connect_graph(config).await?;
    let personas = graph::personas(&mut con).await?;
    if personas.is_empty() {
        println!(
            "no personas in the graph `{}`: load some with `secondme persona import FILE`",
            schema::graph()
        );
        return Ok(());
    }
    let default = graph::user(&mut con, &config.user_id)
        .await?
        .map(|u| u.default_persona);
    let rows: Vec<Vec<String>> = personas
        .iter()
        .map(|p| {
            let mut id = p.id.clone();
            if default.as_deref() == Some(p.id.as_str()) {
                id.push_str(" *");
            }
            vec![
                id,
                p.name.clone(),
                p.style.tone.clone(),
                p.style.example_messages.len().to_string(),
                list_or_none(&p.applicable_to),
            ]
        })
        .collect();
    print_table(
        &["ID", "NAME", "TONE", "EXAMPLES", "FOR RELATIONSHIPS"],
        &rows,
    );
    if default.is_some() {
        println!("* the user's default persona");
    }
    Ok(())
}
