//! Failure isolation: a step that fails as a whole for a reason that may lie in
//! one entry is run again on each half of the batch until the entry at fault is
//! alone; a failure of the server or of a key every entry shares ends the run.

use std::ops::Range;

use anyhow::Result;

use crate::worker::verdict::ScriptReply;

/// Server error codes that say something about the server or a key every entry
/// shares, never about one entry: running the batch in halves cannot help.
const GLOBAL_ERROR_CODES: [&str; 19] = [
    "SERVER_FAULT",
    "MISCONF",
    "NOREPLICAS",
    "NOAUTH",
    "WRONGPASS",
    "EXECABORT",
    "OOM",
    "BUSY",
    "LOADING",
    "READONLY",
    "NOPERM",
    "MASTERDOWN",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MOVED",
    "ASK",
    "CROSSSLOT",
    "NOSCRIPT",
    "SHARED_KEY",
];

/// Whether a failed script may have failed because of one of its entries: Redis
/// answered with an error that names no global cause. Connection errors and the
/// worker's own errors are not.
pub(in crate::worker) fn may_be_one_entrys_fault(e: &anyhow::Error) -> bool {
    let Some(err) = e
        .chain()
        .find_map(|c| c.downcast_ref::<redis::RedisError>())
    else {
        return false;
    };
    // An ACL that does not reach a key comes as a plain ERR from inside a step
    // ("ACL failure in script" on 8.x, "can't access at least one of the keys" on 7.x).
    let acl = err
        .detail()
        .is_some_and(|d| d.contains("ACL failure") || d.contains("can't access"));
    err.code()
        .is_some_and(|code| !GLOBAL_ERROR_CODES.contains(&code) && !acl)
}

/// Runs a step on a batch and, when it fails for a reason that may lie in one
/// entry, on each half, down to single entries, whose failure becomes their own
/// result. Ranges come in the entries' order, so a contact's messages keep theirs.
/// Other failures end the run: what finished is in Redis, the rest still pending.
pub(super) struct Isolation<R> {
    out: Vec<Option<R>>,
    warnings: Vec<String>,
    todo: Vec<Range<usize>>,
}

impl<R> Isolation<R> {
    /// An isolation over `len` entries, starting with the whole batch.
    pub(super) fn new(len: usize) -> Self {
        Self {
            out: std::iter::repeat_with(|| None).take(len).collect(),
            warnings: Vec::new(),
            todo: (len > 0).then_some(0..len).into_iter().collect(),
        }
    }

    /// The next range of entries to run the step on.
    pub(super) fn next(&mut self) -> Option<Range<usize>> {
        self.todo.pop()
    }

    /// Takes the step's answer for `range`; `alone` makes the result of a single
    /// entry the step failed on.
    pub(super) fn settle(
        &mut self,
        range: Range<usize>,
        reply: Result<ScriptReply<R>>,
        alone: impl FnOnce(anyhow::Error) -> R,
    ) -> Result<()> {
        match reply {
            Ok(reply) => {
                self.warnings.extend(reply.warnings);
                for (slot, r) in self.out[range].iter_mut().zip(reply.items) {
                    *slot = Some(r);
                }
            }
            Err(e) if !may_be_one_entrys_fault(&e) => return Err(e),
            Err(e) if range.len() == 1 => {
                tracing::warn!("a step failed on one entry alone: {e:#}");
                self.out[range.start] = Some(alone(e));
            }
            Err(e) => {
                tracing::warn!(
                    "a step failed on {} entries; trying each half: {e:#}",
                    range.len()
                );
                let mid = range.start + range.len() / 2;
                self.todo.push(mid..range.end);
                self.todo.push(range.start..mid);
            }
        }
        Ok(())
    }

    /// Every entry's result, in order, and the warnings.
    pub(super) fn finish(self) -> ScriptReply<R> {
        ScriptReply {
            items: self.out.into_iter().flatten().collect(),
            warnings: self.warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: &str) -> anyhow::Error {
        anyhow::Error::new(redis::make_extension_error(code.into(), Some("x".into())))
            .context("the batch decision script failed")
    }

    /// Runs an isolation over `n` entries where the step fails whenever its range
    /// holds one of `poisoned`, with `code`; returns the results and the ranges tried.
    fn isolate(
        n: usize,
        poisoned: &[usize],
        code: &str,
    ) -> (Result<Vec<String>>, Vec<Range<usize>>) {
        let mut iso = Isolation::new(n);
        let mut tried = Vec::new();
        while let Some(range) = iso.next() {
            tried.push(range.clone());
            let reply = if poisoned.iter().any(|p| range.contains(p)) {
                Err(server_error(code))
            } else {
                Ok(ScriptReply {
                    items: range.clone().map(|i| format!("ok {i}")).collect(),
                    warnings: Vec::new(),
                })
            };
            if let Err(e) = iso.settle(range, reply, |_| "alone".to_owned()) {
                return (Err(e), tried);
            }
        }
        (Ok(iso.finish().items), tried)
    }

    #[test]
    fn a_failing_batch_is_halved_until_the_entry_at_fault_is_alone() {
        let (items, tried) = isolate(8, &[5], "ERR");
        let items = items.expect("no global error");
        assert_eq!(items.len(), 8);
        assert_eq!(items[5], "alone");
        assert!(
            items
                .iter()
                .enumerate()
                .all(|(i, r)| i == 5 || *r == format!("ok {i}"))
        );
        // 0..8 fails, 0..4 passes, 4..8 fails, 4..6 fails, 4..5 passes, 5..6 alone, 6..8 passes.
        assert_eq!(tried, [0..8, 0..4, 4..8, 4..6, 4..5, 5..6, 6..8]);
    }

    #[test]
    fn a_failure_of_the_server_is_never_split_nor_pinned_on_an_entry() {
        for code in ["OOM", "NOPERM", "READONLY", "SHARED_KEY"] {
            let (items, tried) = isolate(8, &[5], code);
            assert!(items.is_err(), "{code}");
            assert_eq!(tried.len(), 1, "{code}: {tried:?}");
            assert_eq!(tried[0], 0..8, "{code}");
        }
        let io = anyhow::Error::new(redis::RedisError::from(std::io::Error::other("reset")));
        assert!(!may_be_one_entrys_fault(&io));
        assert!(may_be_one_entrys_fault(&server_error("WRONGTYPE")));
    }
}
