//! The review file: entries this worker could not finish before it stopped,
//! as JSON lines, so a person can look at them (the seed's "logged for manual review").

use std::io::Write;

use crate::connection::Con;
use anyhow::{Context, Result};
use serde::Serialize;

use super::WorkerConfig;
use super::read_ahead::Batch;
use super::recovery;
use crate::entry;
use crate::schema;
use crate::store;

/// One line of the review file.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewLine<'a> {
    stream_id: &'a str,
    consumer: &'a str,
    reason: &'a str,
    at: i64,
    fields: std::collections::BTreeMap<String, String>,
}

/// Writes this consumer's still-pending entries to the review file and acknowledges
/// them. Returns how many were written. Nothing is acked unless the file write succeeded.
pub async fn write_leftovers(con: &mut Con, cfg: &WorkerConfig) -> Result<u64> {
    let mut cursor = "0".to_owned();
    let mut total = 0u64;
    loop {
        let entries = recovery::read_own_pending(con, cfg, &cursor).await?;
        let Some(last) = entries.last() else {
            return Ok(total);
        };
        cursor = last.id.clone();
        let lines = entries
            .iter()
            .map(|e| (e.id.as_str(), entry::raw_fields(&e.map)));
        total += write_and_ack(con, cfg, lines).await?;
    }
}

/// Writes entries read ahead but not decided before the stop to the review file
/// and acknowledges them; some may exist nowhere else, a gateway having trimmed them.
/// Entries an interrupted batch already finished are left out when Redis can say
/// which (they are no longer pending).
pub(super) async fn write_read_ahead(
    con: &mut Con,
    cfg: &WorkerConfig,
    batches: &mut [Batch],
) -> Result<u64> {
    for b in batches.iter_mut() {
        if let Err(e) = recovery::retain_pending(con, cfg, &mut b.entries).await {
            tracing::warn!("cannot tell which entries read ahead are still pending: {e:#}");
        }
    }
    let lines = batches.iter().flat_map(|b| b.entries.review_lines());
    write_and_ack(con, cfg, lines).await
}

async fn write_and_ack<'a>(
    con: &mut Con,
    cfg: &WorkerConfig,
    entries: impl Iterator<Item = (&'a str, Vec<(String, String)>)>,
) -> Result<u64> {
    let at = store::now_ms();
    let mut text = String::new();
    let mut ids = Vec::new();
    for (stream_id, fields) in entries {
        let line = ReviewLine {
            stream_id,
            consumer: &cfg.consumer,
            reason: "unprocessed when the worker stopped",
            at,
            fields: fields.into_iter().collect(),
        };
        text.push_str(&serde_json::to_string(&line).context("cannot encode a review line")?);
        text.push('\n');
        ids.push(stream_id);
    }
    if ids.is_empty() {
        return Ok(0);
    }
    append(&cfg.review_file, &text)?;
    let _: i64 = redis::AsyncCommands::xack(con, schema::queue_messages(), &cfg.group, &ids)
        .await
        .context("cannot acknowledge reviewed entries")?;
    Ok(ids.len() as u64)
}

/// Size past which the review file is rotated to `<name>.1` (replacing an older
/// one) before more is appended: the file holds message text, so it must not grow
/// without end. At most about twice this is kept on disk.
pub const REVIEW_FILE_CAP: u64 = 16 * 1024 * 1024;

fn append(path: &std::path::Path, text: &str) -> Result<()> {
    append_rotating(path, text, REVIEW_FILE_CAP)
}

/// Appends `text` to the private (0600) file at `path`, first moving the file to
/// `<name>.1` when the text would take it past `cap` bytes.
fn append_rotating(path: &std::path::Path, text: &str, cap: u64) -> Result<()> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > 0 && size.saturating_add(text.len() as u64) > cap {
        let mut rotated = path.as_os_str().to_owned();
        rotated.push(".1");
        std::fs::rename(path, &rotated)
            .with_context(|| format!("cannot rotate review file {}", path.display()))?;
    }
    let mut file = crate::private_file::open_append(path)
        .with_context(|| format!("cannot open review file {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_data())
        .with_context(|| format!("cannot write review file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn the_review_file_is_private_and_rotates_past_its_cap() {
        let dir = std::env::temp_dir().join(format!("secondme-review-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("state/review.jsonl");
        append(&path, "{\"first\":1}\n").expect("append");
        assert_eq!(
            mode(&path),
            0o600,
            "message text is readable by this user only"
        );
        assert_eq!(mode(&dir.join("state")), 0o700);

        let line = format!("{}\n", "x".repeat(99));
        for _ in 0..3 {
            append_rotating(&path, &line, 250).expect("append");
        }
        let rotated = dir.join("state/review.jsonl.1");
        let current = std::fs::read_to_string(&path).expect("current");
        let old = std::fs::read_to_string(&rotated).expect("rotated");
        assert_eq!(current, line, "the third line started a new file");
        assert!(
            old.starts_with("{\"first\":1}") && old.ends_with(&line),
            "{old}"
        );
        assert_eq!(mode(&rotated), 0o600);
        for _ in 0..3 {
            append_rotating(&path, &line, 250).expect("append");
        }
        let total = std::fs::metadata(&path).expect("meta").len()
            + std::fs::metadata(&rotated).expect("meta").len();
        assert!(total <= 2 * 250, "bounded: {total} bytes on disk");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
