//! The log a test reads: a `tracing` subscriber on the test's thread writing
//! every line into a buffer, for tests that check what is (never) logged.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::Level;
use tracing::subscriber::DefaultGuard;

/// What is logged on this thread from [`Captured::start`] until it is dropped.
pub struct Captured {
    buffer: Buffer,
    _guard: DefaultGuard,
    _second: tracing::Dispatch,
}

impl Captured {
    /// Captures the lines logged on this thread at `level` or more severe.
    pub fn start(level: Level) -> Self {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        // While one dispatcher is registered, tracing-core caches a log line's
        // interest from the dispatcher of whichever thread logs it first: another
        // test logging the same line at the same moment would switch it off for
        // this one. With a second one registered, the cache asks them all.
        let second = tracing::Dispatch::new(tracing_subscriber::registry());
        let guard = tracing::subscriber::set_default(subscriber);
        Self {
            buffer,
            _guard: guard,
            _second: second,
        }
    }

    /// Every line logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.0.lock().expect("lock")).into_owned()
    }
}

/// A writer into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
