//! The gateway boundary: the program logged into WhatsApp. It publishes login
//! codes (and keeps the current one in `QR:{userId}`), writes the session, puts every message into `QUEUE:messages`, and sends
//! what the worker puts on `QUEUE:responses`, recording what it sent (`SENT:{id}`)
//! so the echo of a twin's reply is never taken for the person typing.

pub mod simulator;
pub mod whatsapp;

use std::future::Future;

use anyhow::Result;
use tokio::sync::watch;

/// A message source and sink on the WhatsApp side.
pub trait Gateway: Send + 'static {
    /// Runs login, traffic and sending until `stop` turns true.
    fn run(self, stop: watch::Receiver<bool>) -> impl Future<Output = Result<()>> + Send;
}
