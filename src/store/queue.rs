//! Writing to `QUEUE:messages` the way a gateway does, without ever trimming
//! unprocessed entries.

use redis::Cmd;

use crate::schema::{self, QueueMessage};

/// The `XADD` for one message. On servers with `ACKED` trimming (Redis 8.2+) it
/// keeps the seed's cap; elsewhere it does not trim at all and leaves that to the
/// worker, which only removes entries every group has acknowledged.
pub fn xadd(message: &QueueMessage, acked_trim: bool) -> Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(schema::queue_messages());
    if acked_trim {
        cmd.arg("ACKED")
            .arg("MAXLEN")
            .arg("~")
            .arg(schema::QUEUE_MESSAGES_CAP);
    }
    cmd.arg("*");
    for (name, value) in message.fields() {
        cmd.arg(name).arg(value);
    }
    cmd
}
