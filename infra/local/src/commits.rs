//! Group commit for queue publishes: every `publish` waiting at one moment goes into one SQLite
//! transaction, written by one thread, and each publisher is answered once that commit is done.
//! Concurrent webhooks thus share a WAL commit instead of queueing on the database lock one by
//! one, and no tokio worker blocks on SQLite while it waits.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};
use tokio::sync::oneshot;
use wa_core::ports::QueueError;

use crate::now_ms;

/// The most publishes one transaction takes (each carries up to a webhook's events).
const MAX_GROUP: usize = 256;

/// Messages for one queue.
pub(crate) struct Batch {
    pub queue: String,
    pub group: Option<&'static str>,
    pub bodies: Vec<String>,
}

/// One publish: its batch, and where to answer once it is committed. The answer hands the batch
/// back, so that its memory is freed by the thread that allocated it: freed on the writer thread,
/// the bodies took a lock of the publishers' malloc arena that they contended for (its wake-ups
/// were 6 % of a durable `wa dev`'s CPU under load; 8 % more webhooks/s without them).
pub(crate) struct Publish {
    pub batch: Batch,
    pub done: oneshot::Sender<(Batch, Result<(), QueueError>)>,
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
                for Publish { batch, done } in group {
                    // A publisher that gave up (its request was dropped) needs no answer.
                    let _ = done.send((batch, result.clone().map_err(QueueError::Unavailable)));
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
    {
        // One statement for the whole group: looked up in the cache once, not once per message.
        let mut insert = tx
            .prepare_cached("INSERT INTO messages(queue, body, grp, visible_at, sent_at) VALUES (?1, ?2, ?3, ?4, ?4)")
            .map_err(error)?;
        for Publish { batch, .. } in group {
            for body in &batch.bodies {
                insert.execute(params![batch.queue, body, batch.group, now]).map_err(error)?;
            }
        }
    }
    tx.commit().map_err(error)
}
