//! A worker running beside the test until the test stops it.

use std::time::Duration;

use secondme::reply::ReplyEngine;
use secondme::worker::{Worker, WorkerConfig, WorkerStatus};
use tokio::sync::watch;

/// A running worker: its stop switch and its task.
pub struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<WorkerStatus>>,
}

impl Running {
    /// Connects a worker with `engine` and `cfg` to the Redis at `url` and runs it.
    pub async fn start<E: ReplyEngine>(url: &str, engine: E, cfg: WorkerConfig) -> Self {
        let client = secondme::connection::open_client(url).expect("client");
        let w = Worker::connect(client, engine, cfg)
            .await
            .expect("worker connects");
        let (stop, stop_rx) = watch::channel(false);
        Self {
            stop,
            task: tokio::spawn(w.run(stop_rx)),
        }
    }

    /// Stops it; its status, within 10 s.
    pub async fn stop(self) -> WorkerStatus {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the worker stops in time")
            .expect("join")
            .expect("worker result")
    }
}
