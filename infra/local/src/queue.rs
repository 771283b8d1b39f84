//! Queues in SQLite with SQS's semantics: a received message is invisible for the visibility
//! timeout, then comes back unless deleted; past `max_receives` it moves to the queue's DLQ;
//! FIFO queues hand out a message group's messages in order and hold the group while one of its
//! messages is in flight; FIFO sends are deduplicated for five minutes.

use std::time::Duration;

use rusqlite::params;
use wa_core::ports::{EventQueue, QueueError, Redelivery, StoreError};

use crate::commits::{Batch, Publish};
use crate::{Cached, LocalDb, db_error, now_ms};

const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// How long a queue keeps a message (the template's `MessageRetentionPeriod`: 7 days).
pub const RETENTION_MS: i64 = 7 * DAY_MS;
/// How long a dead-letter queue keeps one (14 days, from the message's first send, as on SQS).
pub const DLQ_RETENTION_MS: i64 = 14 * DAY_MS;

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
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(|e| queue_error(&e))?;
        if let (true, Some(dedup)) = (self.fifo, dedup) {
            // Like SQS: the id is remembered for five minutes from its send, even once the message
            // has been received and deleted.
            tx.exec("DELETE FROM dedups WHERE sent_at <= ?1", params![now - DEDUP_WINDOW_MS])
                .map_err(|e| queue_error(&e))?;
            let fresh = tx
                .exec(
                    "INSERT OR IGNORE INTO dedups(queue, dedup, sent_at) VALUES (?1, ?2, ?3)",
                    params![self.name, dedup, now],
                )
                .map_err(|e| queue_error(&e))?;
            if fresh == 0 {
                return Ok(false);
            }
        }
        tx.exec(
            "INSERT INTO messages(queue, body, grp, dedup, visible_at, sent_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![self.name, body, group, dedup, now],
        )
        .map_err(|e| queue_error(&e))?;
        tx.commit().map_err(|e| queue_error(&e))?;
        Ok(true)
    }

    /// Sends many messages in one transaction (one commit, one flush): `(body, group, dedup)` each;
    /// returns, for each, whether it was queued (false: its deduplication id was seen within five
    /// minutes). All or nothing.
    pub fn send_batch(&self, items: &[(String, Option<String>, Option<String>)]) -> Result<Vec<bool>, QueueError> {
        if let Some((body, ..)) = items.iter().find(|(body, ..)| body.len() > self.max_bytes) {
            return Err(QueueError::TooLarge { size: body.len(), limit: self.max_bytes });
        }
        if self.fifo && items.iter().any(|(_, group, _)| group.is_none()) {
            return Err(QueueError::Unavailable("a FIFO queue needs a message group id".into()));
        }
        let now = now_ms();
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(|e| queue_error(&e))?;
        if self.fifo {
            tx.exec("DELETE FROM dedups WHERE sent_at <= ?1", params![now - DEDUP_WINDOW_MS])
                .map_err(|e| queue_error(&e))?;
        }
        let mut queued = Vec::with_capacity(items.len());
        for (body, group, dedup) in items {
            if let (true, Some(dedup)) = (self.fifo, dedup) {
                let fresh = tx
                    .exec(
                        "INSERT OR IGNORE INTO dedups(queue, dedup, sent_at) VALUES (?1, ?2, ?3)",
                        params![self.name, dedup, now],
                    )
                    .map_err(|e| queue_error(&e))?;
                if fresh == 0 {
                    queued.push(false);
                    continue;
                }
            }
            tx.exec(
                "INSERT INTO messages(queue, body, grp, dedup, visible_at, sent_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![self.name, body, group, dedup, now],
            )
            .map_err(|e| queue_error(&e))?;
            queued.push(true);
        }
        tx.commit().map_err(|e| queue_error(&e))?;
        Ok(queued)
    }

    /// Receives up to `max` messages, invisible to others for `visibility`. As on SQS, a message
    /// already received `max_receives` times goes to the dead-letter queue when it would be handed
    /// out again.
    pub fn receive(&self, max: usize, visibility: Duration) -> Result<Vec<Received>, StoreError> {
        let now = now_ms();
        let until = now + i64::try_from(visibility.as_millis()).unwrap_or(30_000);
        let dlq = format!("{}-dlq", self.name);
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(|e| db_error(&e))?;
        // Oldest first, along `messages_in_order` (FIFO groups checked on `messages_by_group`): the
        // cost is the messages returned plus those skipped ahead of them, whatever the backlog behind.
        let sql = if self.fifo {
            "SELECT id, body, grp, receives, sent_at FROM messages m WHERE queue = ?1 AND visible_at <= ?2
               AND NOT EXISTS (SELECT 1 FROM messages o WHERE o.queue = ?1 AND o.grp = m.grp
                               AND o.id < m.id AND o.visible_at > ?2)
             ORDER BY id LIMIT ?3"
        } else {
            "SELECT id, body, grp, receives, sent_at FROM messages WHERE queue = ?1 AND visible_at <= ?2
             ORDER BY id LIMIT ?3"
        };
        let mut received = Vec::with_capacity(max.min(100));
        loop {
            let wanted = max - received.len();
            if wanted == 0 {
                break;
            }
            let rows: Vec<(i64, String, Option<String>, u32, i64)> = {
                let mut statement = tx.prepare_cached(sql).map_err(|e| db_error(&e))?;
                statement
                    .query_map(params![self.name, now, i64::try_from(wanted).unwrap_or(10)], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
                    })
                    .map_err(|e| db_error(&e))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| db_error(&e))?
            };
            let (found, mut dead) = (rows.len(), 0);
            for (id, body, group, receives, sent_at_ms) in rows {
                if receives >= self.max_receives {
                    tx.exec(
                        "UPDATE messages SET queue = ?1, receives = 0, receipt = NULL, visible_at = ?2 WHERE id = ?3",
                        params![dlq, now, id],
                    )
                    .map_err(|e| db_error(&e))?;
                    dead += 1;
                    continue;
                }
                let receipt = format!("{id}-{}-{now}", receives + 1);
                tx.exec(
                    "UPDATE messages SET receipt = ?1, receives = receives + 1, visible_at = ?2 WHERE id = ?3",
                    params![receipt, until, id],
                )
                .map_err(|e| db_error(&e))?;
                received.push(Received { id, receipt, body, group, receives: receives + 1, sent_at_ms });
            }
            // Another round only to fill the places of messages moved to the dead-letter queue.
            if dead == 0 || found < wanted {
                break;
            }
        }
        tx.commit().map_err(|e| db_error(&e))?;
        Ok(received)
    }

    /// Deletes a received message.
    pub fn delete(&self, receipt: &str) -> Result<(), StoreError> {
        self.delete_all(&[receipt])
    }

    /// Deletes received messages, in one commit.
    pub fn delete_all(&self, receipts: &[&str]) -> Result<(), StoreError> {
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(|e| db_error(&e))?;
        for receipt in receipts {
            tx.exec("DELETE FROM messages WHERE receipt = ?1", params![receipt]).map_err(|e| db_error(&e))?;
        }
        tx.commit().map_err(|e| db_error(&e))
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

    /// How long this queue keeps a message.
    #[must_use]
    pub fn retention_ms(&self) -> i64 {
        if self.name.ends_with("-dlq") { DLQ_RETENTION_MS } else { RETENTION_MS }
    }

    /// Deletes the messages sent longer ago than the retention period (in flight or not, as on
    /// SQS); returns how many. Ids follow send times within a queue (a message keeps both when it
    /// moves to or from a dead-letter queue), so the expired ones are the oldest ids: each commit
    /// reads the next few hundred, never the whole queue.
    pub fn expire(&self) -> Result<usize, StoreError> {
        let cutoff = now_ms() - self.retention_ms();
        self.db.delete_in_chunks(|conn, chunk| {
            conn.exec(
                "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE queue = ?1 ORDER BY id LIMIT ?2)
                   AND sent_at < ?3",
                params![self.name, chunk, cutoff],
            )
        })
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
            batch: Batch { queue: self.name.clone(), group: self.fifo.then_some("events"), bodies: bodies.to_vec() },
            done,
        })?;
        let (_batch, result) =
            committed.await.map_err(|_| QueueError::Unavailable("local queue: the writer has stopped".into()))?;
        result
    }

    /// Every group in one commit: a group with a body larger than the queue takes fails alone.
    async fn publish_groups(&self, groups: &[Vec<String>]) -> Vec<Result<(), QueueError>> {
        let mut results: Vec<Result<(), QueueError>> = Vec::with_capacity(groups.len());
        let mut bodies = Vec::new();
        for group in groups {
            results.push(match group.iter().find(|b| b.len() > self.max_bytes) {
                Some(body) => Err(QueueError::TooLarge { size: body.len(), limit: self.max_bytes }),
                None => {
                    bodies.extend(group.iter().cloned());
                    Ok(())
                }
            });
        }
        if bodies.is_empty() {
            return results;
        }
        let (done, committed) = tokio::sync::oneshot::channel();
        let batch = Batch { queue: self.name.clone(), group: self.fifo.then_some("events"), bodies };
        let stopped = || QueueError::Unavailable("local queue: the writer has stopped".into());
        let outcome = match self.db.commits.submit(Publish { batch, done }) {
            Ok(()) => committed.await.map_or_else(|_| Err(stopped()), |(_batch, result)| result),
            Err(error) => Err(error),
        };
        if let Err(error) = outcome {
            let reason = match error {
                QueueError::Unavailable(reason) => reason,
                other => other.to_string(),
            };
            for result in results.iter_mut().filter(|r| r.is_ok()) {
                *result = Err(QueueError::Unavailable(reason.clone()));
            }
        }
        results
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

    /// SQLite virtual-machine steps taken by `f` (a deterministic measure of work, unlike time).
    fn steps<T>(db: &LocalDb, f: impl FnOnce() -> T) -> (T, u64) {
        let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = counter.clone();
        db.lock().progress_handler(
            1,
            Some(move || {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                false
            }),
        );
        let result = f();
        db.lock().progress_handler(1, None::<fn() -> bool>);
        (result, counter.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn fill(db: &LocalDb, queue: &str, n: usize, group: impl Fn(usize) -> Option<String>) {
        let mut conn = db.lock();
        let tx = conn.transaction().unwrap();
        for i in 0..n {
            tx.execute(
                "INSERT INTO messages(queue, body, grp, visible_at, sent_at) VALUES (?1, ?2, ?3, 0, 0)",
                params![queue, format!("m{i}"), group(i)],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    #[test]
    fn receive_cost_does_not_grow_with_the_backlog() {
        // Per backlog: the steps of a receive of 10 with 10 others in flight ahead, 10 received too
        // often ahead (moved to the DLQ on the way) and, on the FIFO queue, a held group ahead.
        let cost = |backlog: usize| {
            let db = LocalDb::memory().unwrap();
            let standard = LocalQueue::new(&db, "inbound", false, 1024, 2);
            fill(&db, "inbound", backlog, |_| None);
            let first = standard.receive(10, Duration::from_secs(60)).unwrap();
            let worn = standard.receive(10, Duration::from_secs(60)).unwrap();
            for message in &worn {
                standard.release(&message.receipt, 0).unwrap();
            }
            let again = standard.receive(10, Duration::from_secs(60)).unwrap();
            assert_eq!(
                again.iter().map(|m| (m.id, m.receives)).collect::<Vec<_>>(),
                worn.iter().map(|m| (m.id, 2)).collect::<Vec<_>>()
            );
            for message in &worn {
                // Received twice: dead on the next receive.
                assert_eq!(
                    db.lock().execute("UPDATE messages SET visible_at = 0 WHERE id = ?1", [message.id]).unwrap(),
                    1
                );
            }
            let (got, standard_steps) = steps(&db, || standard.receive(10, Duration::from_secs(60)).unwrap());
            assert_eq!(got.len(), 10);
            assert_eq!(got[0].id, first[0].id + 20, "oldest first, past those in flight and the dead");
            assert_eq!(standard.dlq().peek(0, 100).unwrap().len(), 10);

            let fifo = LocalQueue::new(&db, "out.fifo", true, 1024, 5);
            // Group "held" has 5 messages ahead of everything; its first one goes in flight.
            fill(&db, "out.fifo", 5, |_| Some("held".into()));
            fill(&db, "out.fifo", backlog, |i| Some(format!("g{}", i % 50)));
            assert_eq!(fifo.receive(1, Duration::from_secs(60)).unwrap()[0].group.as_deref(), Some("held"));
            let (got, fifo_steps) = steps(&db, || fifo.receive(10, Duration::from_secs(60)).unwrap());
            assert_eq!(got.len(), 10);
            assert!(got.iter().all(|m| m.group.as_deref() != Some("held")), "the held group waits");
            (standard_steps, fifo_steps)
        };
        let (small, large) = (cost(100), cost(20_000));
        assert!(
            large.0 <= small.0 + small.0 / 10,
            "standard queue: {small:?} steps with 100 waiting, {large:?} with 20,000"
        );
        assert!(
            large.1 <= small.1 + small.1 / 10,
            "FIFO queue: {small:?} steps with 100 waiting, {large:?} with 20,000"
        );
    }

    #[test]
    fn messages_expire_after_the_retention_period() {
        let db = LocalDb::memory().unwrap();
        let q = LocalQueue::new(&db, "events", false, 1024, 5);
        assert_eq!((q.retention_ms(), q.dlq().retention_ms()), (RETENTION_MS, DLQ_RETENTION_MS));
        let now = now_ms();
        let sent = |queue: &str, age_ms: i64, n: usize| {
            for _ in 0..n {
                db.lock()
                    .execute(
                        "INSERT INTO messages(queue, body, visible_at, sent_at) VALUES (?1, 'x', 0, ?2)",
                        params![queue, now - age_ms],
                    )
                    .unwrap();
            }
        };
        // More than a chunk past the period, a few just inside it, then new ones.
        sent("events", RETENTION_MS + DAY_MS, 1_200);
        sent("events", RETENTION_MS - 60_000, 3);
        sent("events", 0, 2);
        // The DLQ keeps for 14 days what the queue keeps for 7.
        sent("events-dlq", RETENTION_MS + DAY_MS, 4);
        sent("events-dlq", DLQ_RETENTION_MS + DAY_MS, 1);
        // An in-flight message expires too.
        assert_eq!(q.receive(1, Duration::from_secs(600)).unwrap().len(), 1);
        assert_eq!(q.expire().unwrap(), 1_200);
        assert_eq!(q.peek(0, 10_000).unwrap().len(), 5);
        assert_eq!(q.expire().unwrap(), 0);
        assert_eq!(q.dlq().expire().unwrap(), 1);
        assert_eq!(q.dlq().peek(0, 100).unwrap().len(), 4);
    }

    #[test]
    fn a_deduplication_id_is_remembered_five_minutes_after_its_message_is_gone() {
        let db = LocalDb::memory().unwrap();
        let q = LocalQueue::new(&db, "outbound.fifo", true, 1024, 5);
        assert!(q.send("a", Some("g"), Some("d")).unwrap());
        let got = q.receive(10, Duration::from_secs(60)).unwrap();
        q.delete_all(&[got[0].receipt.as_str()]).unwrap();
        assert!(!q.send("a", Some("g"), Some("d")).unwrap(), "deduplicated after the delete");
        assert!(q.receive(10, Duration::from_secs(60)).unwrap().is_empty());
        // Six minutes later the id is free again, and the expired entry is swept.
        db.lock().execute("UPDATE dedups SET sent_at = sent_at - 360000", []).unwrap();
        assert!(q.send("a", Some("g"), Some("d")).unwrap());
        assert!(q.send("b", Some("g"), Some("e")).unwrap());
        let remembered: i64 = db.lock().query_row("SELECT COUNT(*) FROM dedups", [], |r| r.get(0)).unwrap();
        assert_eq!(remembered, 2);
        // Another queue's ids are its own.
        assert!(LocalQueue::new(&db, "other.fifo", true, 1024, 5).send("a", Some("g"), Some("d")).unwrap());
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
    async fn groups_are_published_in_one_commit_and_fail_alone() {
        let db = LocalDb::memory().unwrap();
        let q = LocalQueue::new(&db, "events", false, 1024, 5);
        let commits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = commits.clone();
        db.lock().commit_hook(Some(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            false
        }));
        let mut groups: Vec<Vec<String>> = (0..10).map(|g| vec![format!("{g}-a"), format!("{g}-b")]).collect();
        groups[3] = vec!["x".repeat(2000)];
        let results = q.publish_groups(&groups).await;
        assert!(matches!(results[3], Err(QueueError::TooLarge { .. })), "{results:?}");
        assert!(results.iter().enumerate().all(|(g, r)| g == 3 || r.is_ok()), "{results:?}");
        assert_eq!(commits.load(std::sync::atomic::Ordering::SeqCst), 1, "nine groups, one commit");
        let bodies: Vec<String> = q.peek(0, 100).unwrap().into_iter().map(|(_, body, _)| body).collect();
        let expected: Vec<String> =
            groups.iter().enumerate().filter(|(g, _)| *g != 3).flat_map(|(_, b)| b.clone()).collect();
        assert_eq!(bodies, expected, "in order, the refused group left out");
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
