//! Writing to `QUEUE:messages` the way a gateway does, without ever trimming
//! unprocessed entries.

use redis::Cmd;

use crate::schema::{self, QueueMessage};

/// The `XADD` for one message. On servers with `ACKED` trimming (Redis 8.2+) it
/// keeps the seed's cap; elsewhere it does not trim at all and leaves that to the
/// worker, which only removes entries every group has acknowledged.
pub fn xadd(message: &QueueMessage, acked_trim: bool) -> Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(schema::QUEUE_MESSAGES);
    if acked_trim {
        cmd.arg("ACKED")
            .arg("MAXLEN")
            .arg("~")
            .arg(schema::QUEUE_MESSAGES_CAP);
    }
    cmd.arg("*")
        .arg("messageId")
        .arg(&message.message_id)
        .arg("contactId")
        .arg(&message.contact_id)
        .arg("content")
        .arg(&message.content)
        .arg("timestamp")
        .arg(message.timestamp)
        .arg("direction")
        .arg(message.direction.as_str())
        .arg("fromMe")
        .arg(if message.from_me { "true" } else { "false" });
    cmd
}
