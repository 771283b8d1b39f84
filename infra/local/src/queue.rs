//! Queues in SQLite with SQS's semantics: a received message is invisible for the visibility
//! timeout, then comes back unless deleted; past `max_receives` it moves to the queue's DLQ;
//! FIFO queues hand out a message group's messages in order and hold the group while one of its
//! messages is in flight; FIFO sends are deduplicated for five minutes.

use std::time::Duration;

use rusqlite::{OptionalExtension, params};
use wa_core::ports::{EventQueue, QueueError, Redelivery, StoreError};

use crate::commits::Publish;
use crate::{Cached, LocalDb, db_error, now_ms};

const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;

/// A queue in the local database.
#[derive(Debug, Clone)]
pub struct LocalQueue {
    db: LocalDb,
    name: String,
    fifo: bool,
    max_bytes: usize,
    max_receives: u32,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Its id (the SQS message id).
    pub id: i64,
    /// This receipt; deleting or delaying the message needs it.
    pub receipt: String,
    /// The body.
    pub body: String,
    /// The FIFO message group.
    pub group: Option<String>,
    /// How many times it has been received, this time included.
    pub receives: u32,
    /// When it was sent (Unix ms).
    pub sent_at_ms: i64,
}

/// A message as listed (DLQ inspection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// Messages that can be received now.
    pub visible: u64,
    /// Messages received and not yet deleted or visible again.
    pub in_flight: u64,
}

fn queue_error(error: &rusqlite::Error) -> QueueError {
    QueueError::Unavailable(format!("local queue: {error}"))
}

impl LocalQueue {
    /// The queue `name` (FIFO when `fifo`), whose messages go to `<name>-dlq` after `max_receives`
    /// receives.
    #[must_use]
    pub fn new(db: &LocalDb, name: &str, fifo: bool, max_bytes: usize, max_receives: u32) -> Self {
        Self { db: db.clone(), name: name.to_owned(), fifo, max_bytes, max_receives }
    }

    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its dead-letter queue.
    #[must_use]
    pub fn dlq(&self) -> Self {
        Self::new(&self.db, &format!("{}-dlq", self.name), self.fifo, self.max_bytes, u32::MAX)
    }

    /// Sends one message; on a FIFO queue `group` is required and a repeated `dedup` id within
    /// five minutes is accepted but not queued again (returns `false`).
    pub fn send(&self, body: &str, group: Option<&str>, dedup: Option<&str>) -> Result<bool, QueueError> {
        if body.len() > self.max_bytes {
            return Err(QueueError::TooLarge { size: body.len(), limit: self.max_bytes });
        }
        if self.fifo && group.is_none() {
            return Err(QueueError::Unavailable("a FIFO queue needs a message group id".into()));
        }
        let now = now_ms();
        let conn = self.db.lock();
        if let (true, Some(dedup)) = (self.fifo, dedup) {
            let seen: Option<i64> = conn
                .row(
                    "SELECT id FROM messages WHERE queue = ?1 AND dedup = ?2 AND sent_at > ?3 LIMIT 1",
                    params![self.name, dedup, now - DEDUP_WINDOW_MS],
                    |row| row.get(0),
                )
                .optional()
                .map_err(|e| queue_error(&e))?;
            if seen.is_some() {
                return Ok(false);
            }
        }
        conn.exec(
            "INSERT INTO messages(queue, body, grp, dedup, visible_at, sent_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![self.name, body, group, dedup, now],
        )
        .map_err(|e| queue_error(&e))?;
        Ok(true)
    }

    /// Receives up to `max` messages, invisible to others for `visibility`.
    pub fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Received>, StoreError> {
        let now = now_ms();
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(|e| db_error(&e))?;
        // Past the receive limit: to the dead-letter queue instead of back to a consumer.
        tx.exec(
            "UPDATE messages SET queue = ?1, receives = 0, receipt = NULL, visible_at = ?2
             WHERE queue = ?3 AND visible_at <= ?2 AND receives >= ?4",
            params![format!("{}-dlq", self.name), now, self.name, i64::from(self.max_receives)],
        )
        .map_err(|e| db_error(&e))?;
        let sql = if self.fifo {
            "SELECT id, body, grp, receives, sent_at FROM messages m WHERE queue = ?1 AND visible_at <= ?2
               AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.queue = ?1 AND o.grp = m.grp
                               AND o.id < m.id AND o.visible_at > ?2)
             ORDER BY id LIMIT ?3"
        } else {
            "SELECT id, body, grp, receives, sent_at FROM messages WHERE queue = ?1 AND visible_at <= ?2
             ORDER BY id LIMIT ?3"
        };
        let rows: Vec<(i64, String, Option<String>, u32, i64)> = {
            let mut statement = tx.prepare_cached(sql).map_err(|e| db_error(&e))?;
            let limit = i64::try_from(max).unwrap_or(10);
            statement
                .query_map(params![self.name, now, limit], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
                })
                .map_err(|e| db_error(&e))?
                .collect::<Result<_, _>>()
                .map_err(|e| db_error(&e))?
        };
        let until = now + i64::try_from(visibility.as_millis()).unwrap_or(30_000);
        let mut received = Vec::with_capacity(rows.len());
        for (id, body, group, receives, sent_at_ms) in rows {
            let receipt = format!("{id}-{}-{now}", receives + 1);
            tx.exec(
                "UPDATE messages SET receipt = ?1, receives = receives + 1, visible_at = ?2 WHERE id = ?3",
                params![receipt, until, id],
            )
            .map_err(|e| db_error(&e))?;
            received.push(Received { id, receipt, body, group, receives: receives + 1, sent_at_ms });
        }
        tx.commit().map_err(|e| db_error(&e))?;
        Ok(received)
    }

    /// Deletes a received message.
    pub fn delete(&self, receipt: &str) -> Result<(), StoreError> {
        self.db.lock().exec("DELETE FROM messages WHERE receipt = ?1", params![receipt]).map_err(|e| db_error(&e))?;
        Ok(())
    }

    /// Makes a received message visible again after `seconds`.
    pub fn release(&self, receipt: &str, seconds: u32) -> Result<(), StoreError> {
        let at = now_ms() + i64::from(seconds) * 1000;
        self.db
            .lock()
            .exec("UPDATE messages SET visible_at = ?1 WHERE receipt = ?2", params![at, receipt])
            .map_err(|e| db_error(&e))?;
        Ok(())
    }

    /// How many messages are waiting and in flight.
    pub fn info(&self) -> Result<QueueInfo, StoreError> {
        let now = now_ms();
        let count = |sql: &str| -> Result<u64, StoreError> {
            self.db.lock().row(sql, params![self.name, now], |row| row.get(0)).map_err(|e| db_error(&e))
        };
        Ok(QueueInfo {
            visible: count("SELECT COUNT(*) FROM messages WHERE queue = ?1 AND visible_at <= ?2")?,
            in_flight: count("SELECT COUNT(*) FROM messages WHERE queue = ?1 AND visible_at > ?2")?,
        })
    }

    /// Up to `limit` messages with an id above `after`, oldest first, without receiving them:
    /// (id, body, sent at ms).
    pub fn peek(&self, after: i64, limit: usize) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let conn = self.db.lock();
        let mut statement = conn
            .prepare_cached("SELECT id, body, sent_at FROM messages WHERE queue = ?1 AND id > ?2 ORDER BY id LIMIT ?3")
            .map_err(|e| db_error(&e))?;
        let rows = statement
            .query_map(params![self.name, after, i64::try_from(limit).unwrap_or(100)], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .map_err(|e| db_error(&e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| db_error(&e))?;
        Ok(rows)
    }

    /// The id of the newest message (0 when empty).
    pub fn last_id(&self) -> Result<i64, StoreError> {
        self.db
            .lock()
            .row("SELECT COALESCE(MAX(id), 0) FROM messages WHERE queue = ?1", params![self.name], |row| row.get(0))
            .map_err(|e| db_error(&e))
    }

    /// Moves every message of this queue to `to`, with fresh receive counts; returns how many.
    pub fn move_all(&self, to: &LocalQueue) -> Result<usize, StoreError> {
        self.db
            .lock()
            .exec(
                "UPDATE messages SET queue = ?1, receives = 0, receipt = NULL, visible_at = ?2 WHERE queue = ?3",
                params![to.name, now_ms(), self.name],
            )
            .map_err(|e| db_error(&e))
    }
}

impl EventQueue for LocalQueue {
    fn max_message_bytes(&self) -> usize {
        self.max_bytes
    }

    async fn publish(&self, bodies: &[String]) -> Result<(), QueueError> {
        if let Some(body) = bodies.iter().find(|b| b.len() > self.max_bytes) {
            return Err(QueueError::TooLarge { size: body.len(), limit: self.max_bytes });
        }
        if bodies.is_empty() {
            return Ok(());
        }
        let (done, committed) = tokio::sync::oneshot::channel();
        self.db.commits.submit(Publish {
            queue: self.name.clone(),
            group: self.fifo.then_some("events"),
            bodies: bodies.to_vec(),
            done,
        })?;
        committed.await.map_err(|_| QueueError::Unavailable("local queue: the writer has stopped".into()))?
    }
}

impl Redelivery for LocalQueue {
    async fn delay(&self, receipt_handle: &str, seconds: u32) -> Result<(), QueueError> {
        self.release(receipt_handle, seconds).map_err(|e| QueueError::Unavailable(e.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_receive_counts_and_the_dead_letter_queue() {
        let db = LocalDb::memory().unwrap();
        let q = LocalQueue::new(&db, "inbound", false, 1024, 2);
        q.send("a", None, None).unwrap();
        let first = q.receive(10, Duration::from_secs(60)).unwrap();
        assert_eq!(first.len(), 1);
        assert!(q.receive(10, Duration::from_secs(60)).unwrap().is_empty(), "invisible while in flight");
        q.release(&first[0].receipt, 0).unwrap();
        let second = q.receive(10, Duration::from_secs(60)).unwrap();
        assert_eq!(second[0].receives, 2);
        q.release(&second[0].receipt, 0).unwrap();
        assert!(q.receive(10, Duration::from_secs(60)).unwrap().is_empty(), "past the limit");
        assert_eq!(q.dlq().peek(0, 10).unwrap().len(), 1);
        assert_eq!(q.dlq().move_all(&q).unwrap(), 1);
        let again = q.receive(10, Duration::from_secs(60)).unwrap();
        assert_eq!((again[0].body.as_str(), again[0].receives), ("a", 1));
        q.delete(&again[0].receipt).unwrap();
        assert_eq!(q.info().unwrap(), QueueInfo { visible: 0, in_flight: 0 });
        assert!(matches!(q.send(&"x".repeat(2000), None, None), Err(QueueError::TooLarge { .. })));
    }

    #[test]
    fn fifo_groups_stay_in_order_and_sends_are_deduplicated() {
        let db = LocalDb::memory().unwrap();
        let q = LocalQueue::new(&db, "outbound.fifo", true, 1024, 5);
        assert!(q.send("a1", Some("a"), Some("d1")).unwrap());
        assert!(!q.send("a1", Some("a"), Some("d1")).unwrap(), "deduplicated");
        q.send("a2", Some("a"), Some("d2")).unwrap();
        q.send("b1", Some("b"), Some("d3")).unwrap();
        assert!(q.send("x", None, None).is_err(), "FIFO needs a group");
        let got = q.receive(1, Duration::from_secs(60)).unwrap();
        assert_eq!(got[0].body, "a1");
        // a1 in flight holds a2 back; b1 is free.
        let next = q.receive(10, Duration::from_secs(60)).unwrap();
        assert_eq!(next.iter().map(|r| r.body.as_str()).collect::<Vec<_>>(), ["b1"]);
        q.delete(&got[0].receipt).unwrap();
        assert_eq!(q.receive(10, Duration::from_secs(60)).unwrap()[0].body, "a2");
    }

    #[tokio::test]
    async fn concurrent_publishes_share_commits_and_each_keeps_its_order() {
        let db = LocalDb::memory().unwrap();
        let q = LocalQueue::new(&db, "inbound", false, 1024, 5);
        let batches: Vec<Vec<String>> = (0..50).map(|p| (0..10).map(|i| format!("{p}-{i}")).collect()).collect();
        let results = futures_util::future::join_all(batches.iter().map(|b| q.publish(b))).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let all = q.peek(0, 1000).unwrap();
        assert_eq!(all.len(), 500, "every message committed before its publish returned");
        for (p, batch) in batches.iter().enumerate() {
            let mine: Vec<&str> =
                all.iter().map(|(_, body, _)| body.as_str()).filter(|b| b.starts_with(&format!("{p}-"))).collect();
            assert_eq!(mine, batch.iter().map(String::as_str).collect::<Vec<_>>(), "publish {p} in order");
        }
        assert!(q.publish(&[]).await.is_ok());
        assert!(matches!(q.publish(&["x".repeat(2000)]).await, Err(QueueError::TooLarge { .. })));
        assert_eq!(q.peek(0, 1000).unwrap().len(), 500);
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_publish_in_it() {
        let db = LocalDb::memory().unwrap();
        let q = LocalQueue::new(&db, "inbound", false, 1024, 5);
        db.lock().execute_batch("DROP TABLE messages").unwrap();
        let one = ["a".to_owned()];
        let two = ["b".to_owned(), "c".to_owned()];
        let (first, second) = tokio::join!(q.publish(&one), q.publish(&two));
        for result in [first, second] {
            assert!(
                matches!(&result, Err(QueueError::Unavailable(reason)) if reason.contains("messages")),
                "{result:?}"
            );
        }
    }
}
