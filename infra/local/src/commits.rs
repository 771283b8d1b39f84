//! Group commit for queue publishes: every `publish` waiting at one moment goes into one SQLite
//! transaction, written by one thread, and each publisher is answered once that commit is done.
//! Concurrent webhooks thus share a WAL commit instead of queueing on the database lock one by
//! one, and no tokio worker blocks on SQLite while it waits.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;
use wa_core::ports::QueueError;

use crate::{Cached, now_ms};

/// The most publishes one transaction takes (each carries up to a webhook's events).
const MAX_GROUP: usize = 256;

/// One publish: messages for one queue.
pub(crate) struct Publish {
    pub queue: String,
    pub group: Option<&'static str>,
    pub bodies: Vec<String>,
    pub done: oneshot::Sender<Result<(), QueueError>>,
}

/// The writer's inbox.
#[derive(Clone)]
pub(crate) struct Committer {
    inbox: mpsc::Sender<Publish>,
}

impl Committer {
    /// Starts the writer thread; it ends when the last `Committer` is dropped.
    pub fn start(conn: Arc<Mutex<Connection>>) -> std::io::Result<Self> {
        let (inbox, jobs) = mpsc::channel::<Publish>();
        std::thread::Builder::new().name("wa-local-commits".into()).spawn(move || {
            while let Ok(first) = jobs.recv() {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match jobs.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                let result = write(&conn, &group);
                for publish in group {
                    // A publisher that gave up (its request was dropped) needs no answer.
                    let _ = publish.done.send(result.clone().map_err(QueueError::Unavailable));
                }
            }
        })?;
        Ok(Self { inbox })
    }

    /// Queues `publish`; its `done` is answered after the commit.
    pub fn submit(&self, publish: Publish) -> Result<(), QueueError> {
        self.inbox.send(publish).map_err(|_| QueueError::Unavailable("local queue: the writer has stopped".into()))
    }
}

fn write(conn: &Mutex<Connection>, group: &[Publish]) -> Result<(), String> {
    let error = |e: rusqlite::Error| format!("local queue: {e}");
    let now = now_ms();
    let mut conn = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let tx = conn.transaction().map_err(error)?;
    for publish in group {
        for body in &publish.bodies {
            tx.exec(
                "INSERT INTO messages(queue, body, grp, visible_at, sent_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![publish.queue, body, publish.group, now],
            )
            .map_err(error)?;
        }
    }
    tx.commit().map_err(error)
}
