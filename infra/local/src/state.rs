//! Idempotency, rate-limit and conversation state, blobs and the development secret in the local
//! database, with the same rules as the DynamoDB table (`wa_infra::dynamo`).

use std::sync::Arc;

use rusqlite::{OptionalExtension, params};
use wa_core::conversation::{StatusUpdate, status_rank};
use wa_core::hold::Hold;
use wa_core::identity::ConversationRecord;
use wa_core::ports::{
    BlobError, BlobStore, Claim, ConversationStore, HoldStore, IdempotencyStore, SecretError, SecretSource,
    StatusApplied, StoreError, ThrottleStore,
};
use wa_core::ratelimit::{Reservation, reserve};
use wa_core::secrets::{AppSecrets, SecretStage};
use wa_core::webhook::StatusKind;

use crate::{Cached, LocalDb, db_error};
use wa_infra::dynamo::MessageRecord;

const IN_PROGRESS: &str = "INPROGRESS";
const COMPLETED: &str = "COMPLETED";
const PAIR_MEMORY_MS: i64 = 15 * 60 * 1000;

/// Parked bodies and claim-checked events.
#[derive(Debug, Clone)]
pub struct LocalBlobs {
    db: LocalDb,
}

impl LocalBlobs {
    /// In `db`.
    #[must_use]
    pub fn new(db: &LocalDb) -> Self {
        Self { db: db.clone() }
    }
}

impl LocalBlobs {
    /// Deletes the blobs put more than `days` ago under each `(prefix, days)` rule (`now_s`: Unix
    /// seconds), as the payload bucket's lifecycle rules do in S3; returns how many.
    pub fn expire(&self, now_s: u64, rules: &[(&str, u64)]) -> Result<usize, StoreError> {
        let mut deleted = 0;
        for (prefix, days) in rules {
            let cutoff = i64::try_from(now_s.saturating_sub(days.saturating_mul(86_400))).unwrap_or(i64::MAX);
            let length = i64::try_from(prefix.len()).unwrap_or(i64::MAX);
            deleted += self.db.delete_in_chunks(|conn, chunk| {
                conn.exec(
                    "DELETE FROM blobs WHERE rowid IN (SELECT rowid FROM blobs
                       WHERE put_at < ?1 AND substr(key, 1, ?2) = ?3 LIMIT ?4)",
                    params![cutoff, length, prefix, chunk],
                )
            })?;
        }
        Ok(deleted)
    }
}

impl BlobStore for LocalBlobs {
    fn bucket(&self) -> &str {
        "local"
    }

    async fn put(&self, key: &str, body: Vec<u8>, _content_type: &str) -> Result<(), BlobError> {
        let now_s = crate::now_ms() / 1000;
        self.db
            .lock()
            .exec("INSERT OR REPLACE INTO blobs(key, body, put_at) VALUES (?1, ?2, ?3)", params![key, body, now_s])
            .map(|_| ())
            .map_err(|e| BlobError::Unavailable(e.to_string()))
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        self.db
            .lock()
            .row("SELECT body FROM blobs WHERE key = ?1", params![key], |row| row.get(0))
            .optional()
            .map_err(|e| BlobError::Unavailable(e.to_string()))?
            .ok_or_else(|| BlobError::NotFound(key.to_owned()))
    }

    async fn renew(&self, key: &str) -> Result<(), BlobError> {
        let now_s = crate::now_ms() / 1000;
        match self.db.lock().exec("UPDATE blobs SET put_at = ?1 WHERE key = ?2", params![now_s, key]) {
            Ok(0) => Err(BlobError::NotFound(key.to_owned())),
            Ok(_) => Ok(()),
            Err(e) => Err(BlobError::Unavailable(e.to_string())),
        }
    }
}

/// A media file being written: held in memory until completed, then one blob (the local stack's
/// stand-in for an S3 multipart upload; nothing is visible before it completes).
pub struct LocalUpload {
    blobs: LocalBlobs,
    key: String,
    content_type: String,
    owner: Option<String>,
    body: Vec<u8>,
}

impl wa_core::ports::MediaUpload for LocalUpload {
    async fn part(&mut self, bytes: Vec<u8>) -> Result<(), BlobError> {
        self.body.extend_from_slice(&bytes);
        Ok(())
    }

    async fn complete(self) -> Result<(), BlobError> {
        self.blobs.put(&self.key, self.body, &self.content_type).await?;
        self.blobs
            .db
            .lock()
            .exec("UPDATE blobs SET owner = ?1 WHERE key = ?2", params![self.owner, self.key])
            .map(|_| ())
            .map_err(|e| BlobError::Unavailable(e.to_string()))
    }

    async fn abort(self) -> Result<(), BlobError> {
        Ok(())
    }
}

impl wa_core::ports::ObjectSource for LocalBlobs {
    /// Objects of the local blob store, named with the bucket `local` (`wa send --document`).
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<wa_core::ports::ObjectMeta>, BlobError> {
        if bucket != "local" {
            return Ok(None);
        }
        self.db
            .lock()
            .row("SELECT length(body), put_at FROM blobs WHERE key = ?1", params![key], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(1)?))
            })
            .optional()
            .map(|found| {
                found.map(|(size, put_at)| wa_core::ports::ObjectMeta {
                    size: u64::try_from(size).unwrap_or(0),
                    content_type: None,
                    etag: put_at.map(|t| t.to_string()),
                })
            })
            .map_err(|e| BlobError::Unavailable(e.to_string()))
    }

    async fn read(&self, bucket: &str, key: &str) -> Result<Vec<u8>, BlobError> {
        if bucket != "local" {
            return Err(BlobError::NotFound(format!("{bucket}/{key}")));
        }
        self.get(key).await
    }
}

impl wa_core::ports::MediaStore for LocalBlobs {
    type Upload = LocalUpload;

    fn media_bucket(&self) -> &str {
        "local"
    }

    async fn stored_size(&self, key: &str) -> Result<Option<u64>, BlobError> {
        self.db
            .lock()
            .row("SELECT length(body) FROM blobs WHERE key = ?1", params![key], |row| row.get::<_, i64>(0))
            .optional()
            .map(|size| size.and_then(|s| u64::try_from(s).ok()))
            .map_err(|e| BlobError::Unavailable(e.to_string()))
    }

    async fn begin(&self, key: &str, content_type: &str, owner: Option<&str>) -> Result<LocalUpload, BlobError> {
        Ok(LocalUpload {
            blobs: self.clone(),
            key: key.to_owned(),
            content_type: content_type.to_owned(),
            owner: owner.map(str::to_owned),
            body: Vec::new(),
        })
    }
}

/// The development secret: one app, one version (AWSCURRENT).
#[derive(Debug, Clone)]
pub struct LocalSecrets(pub Arc<AppSecrets>);

impl SecretSource for LocalSecrets {
    async fn get(&self, stage: SecretStage) -> Result<Option<Arc<AppSecrets>>, SecretError> {
        Ok((stage == SecretStage::Current).then(|| self.0.clone()))
    }

    async fn refresh(&self, stage: SecretStage) -> Result<Option<Arc<AppSecrets>>, SecretError> {
        self.get(stage).await
    }
}

/// Sends, rate-limit slots, conversations, statuses, counters and templates.
#[derive(Debug, Clone)]
pub struct LocalState {
    pub(crate) db: LocalDb,
}

impl LocalState {
    /// In `db`.
    #[must_use]
    pub fn new(db: &LocalDb) -> Self {
        Self { db: db.clone() }
    }

    /// Deletes send records, dedupe claims, message statuses and recipients' 131056 runs past their
    /// expiry (`now_s`: Unix seconds), as DynamoDB's TTL does for the table's items; returns how
    /// many. Reads already treat expired sends as absent; this keeps a local stack left running
    /// from growing by a row per event and per message for good.
    pub fn expire(&self, now_s: u64) -> Result<usize, StoreError> {
        let now = i64::try_from(now_s).unwrap_or(i64::MAX);
        let sends = self.db.delete_in_chunks(|conn, chunk| {
            conn.exec(
                "DELETE FROM sends WHERE key IN (SELECT key FROM sends WHERE expires_at < ?1 LIMIT ?2)",
                params![now, chunk],
            )
        })?;
        let statuses = self.db.delete_in_chunks(|conn, chunk| {
            conn.exec(
                "DELETE FROM statuses WHERE wamid IN (SELECT wamid FROM statuses WHERE expires_at < ?1 LIMIT ?2)",
                params![now, chunk],
            )
        })?;
        // A recipient's run of 131056 answers is forgotten after PAIR_MEMORY_MS (as its item's TTL).
        let pairs = self.db.delete_in_chunks(|conn, chunk| {
            conn.exec(
                "DELETE FROM pairs WHERE rowid IN (SELECT rowid FROM pairs WHERE last_ms < ?1 LIMIT ?2)",
                params![now.saturating_mul(1000) - PAIR_MEMORY_MS, chunk],
            )
        })?;
        Ok(sends + statuses + pairs)
    }

    fn add_counter(&self, kind: &str, phone: &str, month: &str, name: &str) -> Result<(), StoreError> {
        self.db
            .lock()
            .exec(
                "INSERT INTO counters(kind, phone, month, name, n) VALUES (?1, ?2, ?3, ?4, 1)
                 ON CONFLICT(kind, phone, month, name) DO UPDATE SET n = n + 1",
                params![kind, phone, month, name],
            )
            .map(|_| ())
            .map_err(|e| db_error(&e))
    }

    fn counters(&self, kind: &str, phone: &str, month: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.db.lock();
        let mut statement = conn
            .prepare_cached("SELECT name, n FROM counters WHERE kind = ?1 AND phone = ?2 AND month = ?3 ORDER BY name")
            .map_err(|e| db_error(&e))?;
        let rows = statement
            .query_map(params![kind, phone, month], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(|e| db_error(&e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| db_error(&e))?;
        Ok(rows)
    }

    /// The month's ledger of a number: billable messages by `<category>#<pricing type>`.
    pub fn costs(&self, phone: &str, month: &str) -> Result<Vec<(String, u64)>, StoreError> {
        self.counters("COST", phone, month)
    }

    /// The month's status counts of a number, by `status#<status>`.
    pub fn status_counts(&self, phone: &str, month: &str) -> Result<Vec<(String, u64)>, StoreError> {
        self.counters("STATS", phone, month)
    }

    /// A message's status record and its send request.
    pub fn message(&self, wamid: &str) -> Result<Option<MessageRecord>, StoreError> {
        let conn = self.db.lock();
        let status = conn
            .row(
                "SELECT status, status_at, callback_data, pricing_category, pricing_type FROM statuses WHERE wamid = ?1",
                params![wamid],
                |row| {
                    Ok((
                        row.get::<_, Option<String>>(0)?,
                        row.get::<_, Option<i64>>(1)?,
                        row.get::<_, Option<String>>(2)?,
                        row.get::<_, Option<String>>(3)?,
                        row.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| db_error(&e))?;
        let key: Option<String> = conn
            .row("SELECT key FROM sends WHERE wamid = ?1 LIMIT 1", params![wamid], |row| row.get(0))
            .optional()
            .map_err(|e| db_error(&e))?;
        if status.is_none() && key.is_none() {
            return Ok(None);
        }
        let (status, status_at, callback_data, pricing_category, pricing_type) =
            status.unwrap_or((None, None, None, None, None));
        Ok(Some(MessageRecord {
            status,
            status_at: status_at.and_then(|t| u64::try_from(t).ok()),
            callback_data,
            pricing_category,
            pricing_type,
            idempotency_key: key,
        }))
    }

    /// A user's profile name, when a message carried it.
    pub fn profile_name(&self, phone: &str, user: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .db
            .lock()
            .row("SELECT profile_name FROM conversations WHERE phone = ?1 AND user = ?2", params![phone, user], |row| {
                row.get::<_, Option<String>>(0)
            })
            .optional()
            .map_err(|e| db_error(&e))?
            .flatten())
    }

    fn upsert_conversation(&self, phone: &str, user: &str) -> Result<(), StoreError> {
        self.db
            .lock()
            .exec("INSERT OR IGNORE INTO conversations(phone, user) VALUES (?1, ?2)", params![phone, user])
            .map(|_| ())
            .map_err(|e| db_error(&e))
    }
}

/// How long a message's status record is kept (its DynamoDB item's TTL: 90 days).
pub(crate) const STATUS_TTL_S: i64 = 90 * 86_400;

fn status_expiry() -> i64 {
    crate::now_ms() / 1000 + STATUS_TTL_S
}

/// state, in_progress_until, outcome, published, expires_at.
type SendRow = (String, Option<i64>, Option<String>, bool, i64);

fn secs(ms: u64) -> i64 {
    i64::try_from(ms / 1000).unwrap_or(i64::MAX)
}

impl IdempotencyStore for LocalState {
    async fn claim(&self, key: &str, now: u64, in_progress_until_ms: u64) -> Result<Claim, StoreError> {
        let conn = self.db.lock();
        let now_ms = i64::try_from(now).unwrap_or(i64::MAX);
        let until = i64::try_from(in_progress_until_ms).unwrap_or(i64::MAX);
        let existing: Option<SendRow> = conn
            .row(
                "SELECT state, in_progress_until, outcome, published, expires_at FROM sends WHERE key = ?1",
                params![key],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)),
            )
            .optional()
            .map_err(|e| db_error(&e))?;
        let free = match &existing {
            None => true,
            Some((state, in_progress_until, _, _, expires_at)) => {
                (state == IN_PROGRESS && in_progress_until.unwrap_or(0) < now_ms) || *expires_at < secs(now)
            }
        };
        if free {
            conn.exec(
                "INSERT OR REPLACE INTO sends(key, state, in_progress_until, outcome, wamid, published, expires_at, request)
                 VALUES (?1, ?2, ?3, NULL, NULL, 0, ?4, NULL)",
                params![key, IN_PROGRESS, until, secs(now) + 86_400],
            )
            .map_err(|e| db_error(&e))?;
            let unfinished = matches!(&existing, Some((state, _, _, _, expires_at)) if state == IN_PROGRESS && *expires_at >= secs(now));
            return Ok(if unfinished { Claim::Reclaimed } else { Claim::Acquired });
        }
        Ok(match existing {
            Some((state, in_progress_until, outcome, published, _)) if state == COMPLETED => Claim::Completed {
                outcome: outcome.unwrap_or_default(),
                published,
                owner_until_ms: u64::try_from(in_progress_until.unwrap_or(0)).unwrap_or(0),
            },
            _ => Claim::InProgress,
        })
    }

    async fn complete(
        &self,
        key: &str,
        outcome: &str,
        wamid: Option<&str>,
        request: Option<&str>,
        expires_at_s: u64,
    ) -> Result<(), StoreError> {
        self.db
            .lock()
            .exec(
                "UPDATE sends SET state = ?1, outcome = ?2, wamid = ?3, published = 0, expires_at = ?4, request = ?5
                 WHERE key = ?6",
                params![COMPLETED, outcome, wamid, i64::try_from(expires_at_s).unwrap_or(i64::MAX), request, key],
            )
            .map(|_| ())
            .map_err(|e| db_error(&e))
    }

    async fn stored_request(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.db
            .lock()
            .row("SELECT request FROM sends WHERE key = ?1", params![key], |row| row.get::<_, Option<String>>(0))
            .optional()
            .map(Option::flatten)
            .map_err(|e| db_error(&e))
    }

    async fn complete_published(&self, key: &str, outcome: &str, expires_at_s: u64) -> Result<(), StoreError> {
        self.db
            .lock()
            .exec(
                "UPDATE sends SET state = ?1, outcome = ?2, published = 1, expires_at = ?3 WHERE key = ?4",
                params![COMPLETED, outcome, i64::try_from(expires_at_s).unwrap_or(i64::MAX), key],
            )
            .map(|_| ())
            .map_err(|e| db_error(&e))
    }

    async fn mark_published(&self, key: &str) -> Result<(), StoreError> {
        self.db
            .lock()
            .exec("UPDATE sends SET published = 1 WHERE key = ?1", params![key])
            .map(|_| ())
            .map_err(|e| db_error(&e))
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.db
            .lock()
            .exec("DELETE FROM sends WHERE key = ?1 AND state = ?2", params![key, IN_PROGRESS])
            .map(|_| ())
            .map_err(|e| db_error(&e))
    }
}

impl ThrottleStore for LocalState {
    async fn reserve(
        &self,
        phone: &str,
        count: u32,
        interval_us: u64,
        now_us: u64,
        horizon_us: u64,
    ) -> Result<Option<Reservation>, StoreError> {
        let conn = self.db.lock();
        let tat: Option<i64> = conn
            .row("SELECT tat_us FROM rates WHERE phone = ?1", params![phone], |row| row.get(0))
            .optional()
            .map_err(|e| db_error(&e))?;
        let reservation = reserve(tat.and_then(|t| u64::try_from(t).ok()), now_us, count, interval_us, horizon_us);
        if let Some(r) = &reservation {
            conn.exec(
                "INSERT INTO rates(phone, tat_us) VALUES (?1, ?2) ON CONFLICT(phone) DO UPDATE SET tat_us = ?2",
                params![phone, i64::try_from(r.new_tat_us).unwrap_or(i64::MAX)],
            )
            .map_err(|e| db_error(&e))?;
        }
        Ok(reservation)
    }

    async fn pair_hit(&self, phone: &str, to: &str, now: u64) -> Result<u32, StoreError> {
        let conn = self.db.lock();
        let to = to.trim_start_matches('+');
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let previous: Option<(i64, u32)> = conn
            .row("SELECT last_ms, hits FROM pairs WHERE phone = ?1 AND recipient = ?2", params![phone, to], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .map_err(|e| db_error(&e))?;
        let hits =
            previous.filter(|(last, _)| now - last < PAIR_MEMORY_MS).map_or(1, |(_, hits)| hits.saturating_add(1));
        conn.exec(
            "INSERT OR REPLACE INTO pairs(phone, recipient, last_ms, hits) VALUES (?1, ?2, ?3, ?4)",
            params![phone, to, now, hits],
        )
        .map_err(|e| db_error(&e))?;
        Ok(hits)
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl LocalState {
    /// Every held number (`wa hold list` on the local stack).
    pub fn holds(&self) -> Result<Vec<(String, Hold)>, StoreError> {
        let conn = self.db.lock();
        let mut statement = conn
            .prepare_cached("SELECT phone, code, since_ms, until_ms, strikes, probe_until FROM holds ORDER BY phone")
            .map_err(|e| db_error(&e))?;
        statement
            .query_map([], |row| Ok((row.get(0)?, hold_row(row, 1)?)))
            .map_err(|e| db_error(&e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| db_error(&e))
    }
}

fn hold_row(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Hold> {
    let unsigned = |i: usize| -> rusqlite::Result<u64> { Ok(u64::try_from(row.get::<_, i64>(i)?).unwrap_or(0)) };
    Ok(Hold {
        code: row.get(first)?,
        since_ms: unsigned(first + 1)?,
        until_ms: unsigned(first + 2)?,
        strikes: u32::try_from(row.get::<_, i64>(first + 3)?).unwrap_or(1),
        probe_until_ms: row.get::<_, Option<i64>>(first + 4)?.and_then(|v| u64::try_from(v).ok()),
    })
}

impl wa_core::ports::MediaIdCache for LocalState {
    async fn media_id(&self, phone: &str, digest: &str, now_s: u64) -> Result<Option<String>, StoreError> {
        self.db
            .lock()
            .row(
                "SELECT media_id FROM media_ids WHERE phone = ?1 AND digest = ?2 AND expires_at > ?3",
                params![phone, digest, to_i64(now_s)],
                |row| row.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| db_error(&e))
    }

    async fn claim_upload(&self, phone: &str, digest: &str, now_ms: u64, until_ms: u64) -> Result<bool, StoreError> {
        let conn = self.db.lock();
        conn.exec(
            "INSERT OR IGNORE INTO media_ids(phone, digest, expires_at) VALUES (?1, ?2, 0)",
            params![phone, digest],
        )
        .map_err(|e| db_error(&e))?;
        conn.exec(
            "UPDATE media_ids SET upload_until = ?1 WHERE phone = ?2 AND digest = ?3
             AND (upload_until IS NULL OR upload_until < ?4) AND (media_id IS NULL OR expires_at < ?5)",
            params![to_i64(until_ms), phone, digest, to_i64(now_ms), to_i64(now_ms / 1000)],
        )
        .map(|n| n > 0)
        .map_err(|e| db_error(&e))
    }

    async fn release_upload(&self, phone: &str, digest: &str) -> Result<(), StoreError> {
        self.db
            .lock()
            .exec("UPDATE media_ids SET upload_until = NULL WHERE phone = ?1 AND digest = ?2", params![phone, digest])
            .map(|_| ())
            .map_err(|e| db_error(&e))
    }

    async fn put_media_id(
        &self,
        phone: &str,
        digest: &str,
        media_id: &str,
        expires_at_s: u64,
    ) -> Result<(), StoreError> {
        self.db
            .lock()
            .exec(
                "INSERT INTO media_ids(phone, digest, media_id, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(phone, digest) DO UPDATE SET media_id = ?3, expires_at = ?4, upload_until = NULL",
                params![phone, digest, media_id, to_i64(expires_at_s)],
            )
            .map(|_| ())
            .map_err(|e| db_error(&e))
    }
}

impl LocalState {
    /// `wa erase` on the local stack: a person's conversation records and links (every id), pair-rate
    /// runs, message statuses sent to them, send records addressed to them, the media files they
    /// sent, and every queued message that names one of their ids; deleted unless `dry_run`.
    pub fn erase(
        &self,
        phone: &str,
        ids: &[String],
        dry_run: bool,
    ) -> Result<std::collections::BTreeMap<&'static str, usize>, StoreError> {
        let mut erased = std::collections::BTreeMap::new();
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(|e| db_error(&e))?;
        let tables = [
            ("conversation records", "conversations", "phone = ?1 AND user = ?2"),
            ("links", "links", "phone = ?1 AND (a = ?2 OR b = ?2)"),
            ("pair-rate records", "pairs", "phone = ?1 AND (recipient = ?2 OR recipient = '+' || ?2)"),
            ("message statuses", "statuses", "?1 = ?1 AND recipient = ?2"),
            ("messaging-limit records", "reached", "?1 = ?1 AND user = ?2"),
            (
                "send records",
                "sends",
                "?1 = ?1 AND (outcome LIKE '%\"' || ?2 || '\"%' OR outcome LIKE '%\"+' || ?2 || '\"%')",
            ),
            ("media files", "blobs", "?1 = ?1 AND owner = ?2"),
            (
                "queued messages",
                "messages",
                "?1 = ?1 AND (body LIKE '%\"' || ?2 || '\"%' OR body LIKE '%\"+' || ?2 || '\"%')",
            ),
        ];
        for (kind, table, condition) in tables {
            // The rows of any of the ids, each counted once.
            let mut rows = std::collections::BTreeSet::new();
            for id in ids {
                let mut statement =
                    tx.prepare(&format!("SELECT rowid FROM {table} WHERE {condition}")).map_err(|e| db_error(&e))?;
                let found = statement
                    .query_map(params![phone, id], |row| row.get::<_, i64>(0))
                    .map_err(|e| db_error(&e))?
                    .collect::<Result<Vec<i64>, _>>()
                    .map_err(|e| db_error(&e))?;
                rows.extend(found);
            }
            erased.insert(kind, rows.len());
            if !dry_run {
                for row in rows {
                    tx.execute(&format!("DELETE FROM {table} WHERE rowid = ?1"), params![row])
                        .map_err(|e| db_error(&e))?;
                }
            }
        }
        tx.commit().map_err(|e| db_error(&e))?;
        Ok(erased)
    }
}

impl HoldStore for LocalState {
    async fn hold(&self, phone: &str) -> Result<Option<Hold>, StoreError> {
        self.db
            .lock()
            .row(
                "SELECT code, since_ms, until_ms, strikes, probe_until FROM holds WHERE phone = ?1",
                params![phone],
                |row| hold_row(row, 0),
            )
            .optional()
            .map_err(|e| db_error(&e))
    }

    async fn put_hold(&self, phone: &str, hold: &Hold, previous_strikes: u32) -> Result<bool, StoreError> {
        let conn = self.db.lock();
        let values =
            params![phone, hold.code, to_i64(hold.since_ms), to_i64(hold.until_ms), hold.strikes, previous_strikes];
        let changed = if previous_strikes == 0 {
            conn.exec(
                "INSERT OR IGNORE INTO holds(phone, code, since_ms, until_ms, strikes) SELECT ?1, ?2, ?3, ?4, ?5 WHERE ?6 = 0",
                values,
            )
        } else {
            conn.exec(
                "UPDATE holds SET code = ?2, since_ms = ?3, until_ms = ?4, strikes = ?5, probe_until = NULL
                 WHERE phone = ?1 AND strikes = ?6",
                values,
            )
        };
        changed.map(|n| n > 0).map_err(|e| db_error(&e))
    }

    async fn claim_probe(&self, phone: &str, now_ms: u64, probe_until_ms: u64) -> Result<bool, StoreError> {
        self.db
            .lock()
            .exec(
                "UPDATE holds SET probe_until = ?1 WHERE phone = ?2 AND until_ms <= ?3
                 AND (probe_until IS NULL OR probe_until <= ?3)",
                params![to_i64(probe_until_ms), phone, to_i64(now_ms)],
            )
            .map(|n| n > 0)
            .map_err(|e| db_error(&e))
    }

    async fn clear_hold(&self, phone: &str) -> Result<(), StoreError> {
        self.db.lock().exec("DELETE FROM holds WHERE phone = ?1", params![phone]).map(|_| ()).map_err(|e| db_error(&e))
    }
}

impl ConversationStore for LocalState {
    async fn record_inbound(
        &self,
        phone: &str,
        user: &str,
        at_s: i64,
        profile_name: Option<&str>,
    ) -> Result<(), StoreError> {
        self.upsert_conversation(phone, user)?;
        self.db
            .lock()
            .exec(
                "UPDATE conversations SET last_inbound_at = ?1, profile_name = COALESCE(?2, profile_name)
                 WHERE phone = ?3 AND user = ?4 AND (last_inbound_at IS NULL OR last_inbound_at < ?1)",
                params![at_s, profile_name, phone, user],
            )
            .map(|_| ())
            .map_err(|e| db_error(&e))
    }

    async fn record_username(&self, phone: &str, user: &str, username: &str) -> Result<(), StoreError> {
        self.upsert_conversation(phone, user)?;
        self.db
            .lock()
            .exec(
                "UPDATE conversations SET username = ?1 WHERE phone = ?2 AND user = ?3",
                params![username, phone, user],
            )
            .map(|_| ())
            .map_err(|e| db_error(&e))
    }

    async fn set_marketing_opt_out(
        &self,
        phone: &str,
        user: &str,
        opted_out: bool,
        at_s: i64,
    ) -> Result<bool, StoreError> {
        self.upsert_conversation(phone, user)?;
        let changed = self
            .db
            .lock()
            .exec(
                "UPDATE conversations SET marketing_opt_out = ?1, consent_at = ?2
                 WHERE phone = ?3 AND user = ?4 AND (consent_at IS NULL OR consent_at <= ?2)",
                params![opted_out, at_s, phone, user],
            )
            .map_err(|e| db_error(&e))?;
        Ok(changed > 0)
    }

    async fn apply_status(&self, update: &StatusUpdate<'_>) -> Result<StatusApplied, StoreError> {
        let Some(rank) = status_rank(update.status) else { return Ok(StatusApplied::default()) };
        let conn = self.db.lock();
        conn.exec(
            "INSERT OR IGNORE INTO statuses(wamid, expires_at) VALUES (?1, ?2)",
            params![update.wamid, status_expiry()],
        )
        .map_err(|e| db_error(&e))?;
        let costed: bool = conn
            .row("SELECT costed FROM statuses WHERE wamid = ?1", params![update.wamid], |r| r.get::<_, i64>(0))
            .map(|c| c != 0)
            .map_err(|e| db_error(&e))?;
        if let Some((category, kind, billable)) = update.pricing {
            conn.exec(
                "UPDATE statuses SET pricing_category = ?1, pricing_type = ?2, billable = ?3,
                     pricing_model = COALESCE(?4, pricing_model) WHERE wamid = ?5",
                params![category, kind, billable, update.pricing_model, update.wamid],
            )
            .map_err(|e| db_error(&e))?;
        }
        // failed applies only below read; anything else only above the stored rank.
        let ceiling = if *update.status == StatusKind::Failed { 3 } else { rank };
        let applied = conn
            .exec(
                "UPDATE statuses SET status = ?1, rank = ?2, status_at = ?3,
                     recipient = COALESCE(?4, recipient), callback_data = COALESCE(?5, callback_data)
                 WHERE wamid = ?6 AND (rank IS NULL OR rank < ?7)",
                params![
                    update.status.as_str(),
                    rank,
                    update.at.unwrap_or(0),
                    update.recipient,
                    update.callback_data,
                    update.wamid,
                    ceiling
                ],
            )
            .map_err(|e| db_error(&e))?;
        Ok(StatusApplied { advanced: applied > 0, costed })
    }

    async fn records(&self, phone: &str, ids: &[String]) -> Result<Vec<ConversationRecord>, StoreError> {
        let conn = self.db.lock();
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            let record = conn
                .row(
                    "SELECT last_inbound_at, window_closed_at, free_entry_point_until, marketing_opt_out, consent_at,
                            profile_name, retired_at, username FROM conversations WHERE phone = ?1 AND user = ?2",
                    params![phone, id],
                    |row| {
                        Ok(ConversationRecord {
                            id: id.clone(),
                            last_inbound_at: row.get(0)?,
                            window_closed_at: row.get(1)?,
                            free_entry_point_until: row.get(2)?,
                            marketing_opt_out: row.get(3)?,
                            consent_at: row.get(4)?,
                            profile_name: row.get(5)?,
                            links: Vec::new(),
                            retired_at: row.get(6)?,
                            username: row.get(7)?,
                        })
                    },
                )
                .optional()
                .map_err(|e| db_error(&e))?;
            let Some(mut record) = record else { continue };
            let mut statement = conn
                .prepare_cached("SELECT b FROM links WHERE phone = ?1 AND a = ?2 ORDER BY b")
                .map_err(|e| db_error(&e))?;
            record.links = statement
                .query_map(params![phone, id], |row| row.get(0))
                .map_err(|e| db_error(&e))?
                .collect::<Result<Vec<String>, _>>()
                .map_err(|e| db_error(&e))?;
            records.push(record);
        }
        Ok(records)
    }

    async fn link(&self, phone: &str, ids: &[String]) -> Result<(), StoreError> {
        for id in ids {
            self.upsert_conversation(phone, id)?;
        }
        let conn = self.db.lock();
        for a in ids {
            for b in ids.iter().filter(|b| *b != a) {
                conn.exec("INSERT OR IGNORE INTO links(phone, a, b) VALUES (?1, ?2, ?3)", params![phone, a, b])
                    .map_err(|e| db_error(&e))?;
            }
        }
        Ok(())
    }

    async fn detach(&self, phone: &str, id: &str, at_s: i64) -> Result<(), StoreError> {
        self.upsert_conversation(phone, id)?;
        let conn = self.db.lock();
        conn.exec("DELETE FROM links WHERE phone = ?1 AND (a = ?2 OR b = ?2)", params![phone, id])
            .map_err(|e| db_error(&e))?;
        conn.exec(
            "UPDATE conversations SET retired_at = MAX(COALESCE(retired_at, ?1), ?1) WHERE phone = ?2 AND user = ?3",
            params![at_s, phone, id],
        )
        .map(|_| ())
        .map_err(|e| db_error(&e))
    }

    async fn status_of(&self, wamid: &str) -> Result<Option<String>, StoreError> {
        self.db
            .lock()
            .row("SELECT status FROM statuses WHERE wamid = ?1", params![wamid], |row| row.get::<_, Option<String>>(0))
            .optional()
            .map(Option::flatten)
            .map_err(|e| db_error(&e))
    }

    async fn send_key_of(&self, wamid: &str) -> Result<Option<String>, StoreError> {
        self.db
            .lock()
            .row("SELECT key FROM sends WHERE wamid = ?1 LIMIT 1", params![wamid], |row| row.get(0))
            .optional()
            .map_err(|e| db_error(&e))
    }

    async fn record_free_entry_point(&self, phone: &str, user: &str, until_s: i64) -> Result<(), StoreError> {
        self.upsert_conversation(phone, user)?;
        self.db
            .lock()
            .exec(
                "UPDATE conversations SET free_entry_point_until = ?1 WHERE phone = ?2 AND user = ?3
                 AND (free_entry_point_until IS NULL OR free_entry_point_until < ?1)",
                params![until_s, phone, user],
            )
            .map(|_| ())
            .map_err(|e| db_error(&e))
    }

    async fn mark_window_closed(&self, phone: &str, user: &str, at_s: i64) -> Result<(), StoreError> {
        self.upsert_conversation(phone, user)?;
        self.db
            .lock()
            .exec(
                "UPDATE conversations SET window_closed_at = ?1 WHERE phone = ?2 AND user = ?3",
                params![at_s, phone, user],
            )
            .map(|_| ())
            .map_err(|e| db_error(&e))
    }

    async fn record_template_category(&self, name: &str, language: &str, category: &str) -> Result<(), StoreError> {
        let update = wa_core::templates::TemplateUpdate { category: Some(category.to_owned()), ..Default::default() };
        self.record_template(name, language, &update).await
    }

    async fn template_category(&self, name: &str, language: &str) -> Result<Option<String>, StoreError> {
        let conn = self.db.lock();
        let registry: Option<Option<String>> = conn
            .row(
                "SELECT category FROM template_registry WHERE name = ?1 AND language = ?2",
                params![name, language],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| db_error(&e))?;
        if let Some(Some(category)) = registry {
            return Ok(Some(category));
        }
        // Written by an earlier version.
        conn.row("SELECT category FROM templates WHERE name = ?1 AND language = ?2", params![name, language], |row| {
            row.get(0)
        })
        .optional()
        .map_err(|e| db_error(&e))
    }

    async fn record_template(
        &self,
        name: &str,
        language: &str,
        update: &wa_core::templates::TemplateUpdate,
    ) -> Result<(), StoreError> {
        self.db
            .lock()
            .exec(
                "INSERT INTO template_registry(name, language, status, category, quality, parameter_format, body_params, header_params)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(name, language) DO UPDATE SET status = COALESCE(?3, status), category = COALESCE(?4, category),
                   quality = COALESCE(?5, quality), parameter_format = COALESCE(?6, parameter_format),
                   body_params = COALESCE(?7, body_params), header_params = COALESCE(?8, header_params)",
                params![
                    name,
                    language,
                    update.status,
                    update.category,
                    update.quality,
                    update.parameter_format,
                    update.body_params,
                    update.header_params
                ],
            )
            .map(|_| ())
            .map_err(|e| db_error(&e))
    }

    async fn template(
        &self,
        name: &str,
        language: &str,
    ) -> Result<Option<wa_core::templates::TemplateFacts>, StoreError> {
        self.db
            .lock()
            .row(
                "SELECT status, category, quality, parameter_format, body_params, header_params FROM template_registry
                 WHERE name = ?1 AND language = ?2",
                params![name, language],
                |row| {
                    Ok(wa_core::templates::TemplateFacts {
                        status: row.get(0)?,
                        category: row.get(1)?,
                        quality: row.get(2)?,
                        parameter_format: row.get(3)?,
                        body_params: row.get(4)?,
                        header_params: row.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(|e| db_error(&e))
    }

    async fn count_status(&self, phone: &str, month: &str, status: &str) -> Result<(), StoreError> {
        self.add_counter("STATS", phone, month, &format!("status#{status}"))
    }

    async fn count_cost_once(
        &self,
        wamid: &str,
        phone: &str,
        month: &str,
        category: &str,
        pricing_type: &str,
    ) -> Result<bool, StoreError> {
        // The mark and the counter in one transaction, as DynamoDB's TransactWriteItems does.
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(|e| db_error(&e))?;
        tx.execute(
            "INSERT OR IGNORE INTO statuses(wamid, expires_at) VALUES (?1, ?2)",
            params![wamid, status_expiry()],
        )
        .map_err(|e| db_error(&e))?;
        let first = tx
            .execute("UPDATE statuses SET costed = 1 WHERE wamid = ?1 AND costed = 0", params![wamid])
            .map_err(|e| db_error(&e))?
            > 0;
        if first {
            tx.execute(
                "INSERT INTO counters(kind, phone, month, name, n) VALUES ('COST', ?1, ?2, ?3, 1)
                 ON CONFLICT(kind, phone, month, name) DO UPDATE SET n = n + 1",
                params![phone, month, format!("{category}#{pricing_type}")],
            )
            .map_err(|e| db_error(&e))?;
        }
        tx.commit().map_err(|e| db_error(&e))?;
        Ok(first)
    }
}

impl wa_core::ports::CampaignStore for LocalState {
    async fn record_campaign(
        &self,
        campaign: &str,
        variant: &str,
        queued: u64,
        suppressed: u64,
    ) -> Result<(), StoreError> {
        let (queued, suppressed) =
            (i64::try_from(queued).unwrap_or(i64::MAX), i64::try_from(suppressed).unwrap_or(i64::MAX));
        self.db
            .lock()
            .exec(
                "INSERT OR REPLACE INTO campaigns(campaign, variant, queued, suppressed) VALUES (?1, ?2, ?3, ?4)",
                params![campaign, variant, queued, suppressed],
            )
            .map(|_| ())
            .map_err(|e| db_error(&e))
    }

    async fn campaign_counts(&self, campaign: &str) -> Result<Vec<(String, u64, u64)>, StoreError> {
        let conn = self.db.lock();
        let mut statement = conn
            .prepare_cached("SELECT variant, queued, suppressed FROM campaigns WHERE campaign = ?1 ORDER BY variant")
            .map_err(|e| db_error(&e))?;
        let rows = statement
            .query_map(params![campaign], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
            })
            .map_err(|e| db_error(&e))?;
        rows.map(|r| {
            r.map(|(v, q, s)| (v, u64::try_from(q).unwrap_or(0), u64::try_from(s).unwrap_or(0)))
                .map_err(|e| db_error(&e))
        })
        .collect()
    }

    async fn campaign_sends(&self, campaign: &str) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let prefix = format!("{}{campaign}:", wa_core::campaign::KEY_PREFIX);
        let conn = self.db.lock();
        // A range on the primary key (keys sort as text): the campaign's records and no others.
        let mut statement = conn
            .prepare_cached("SELECT key, outcome FROM sends WHERE key >= ?1 AND key < ?2 ORDER BY key")
            .map_err(|e| db_error(&e))?;
        let end = format!("{}{campaign};", wa_core::campaign::KEY_PREFIX);
        let rows = statement
            .query_map(params![prefix, end], |row| Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?)))
            .map_err(|e| db_error(&e))?;
        rows.map(|r| r.map_err(|e| db_error(&e))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sends_are_claimed_once_and_statuses_only_move_forward() {
        let state = LocalState::new(&LocalDb::memory().unwrap());
        let now = 1_000_000_000_000;
        assert_eq!(state.claim("k", now, now + 30_000).await.unwrap(), Claim::Acquired);
        assert_eq!(state.claim("k", now + 1, now + 30_000).await.unwrap(), Claim::InProgress);
        state.complete("k", "{}", Some("wamid.1"), None, 4_000_000_000).await.unwrap();
        assert!(matches!(state.claim("k", now + 2, now + 30_000).await.unwrap(), Claim::Completed { .. }));
        let read = StatusUpdate {
            wamid: "wamid.1",
            status: &StatusKind::Read,
            at: Some(5),
            recipient: None,
            callback_data: None,
            pricing: Some(("marketing", "regular", true)),
            pricing_model: Some("PMP"),
        };
        let sent = StatusUpdate { status: &StatusKind::Sent, ..read.clone() };
        assert!(state.apply_status(&read).await.unwrap().advanced);
        assert!(!state.apply_status(&sent).await.unwrap().advanced, "never downgraded");
        let record = state.message("wamid.1").unwrap().unwrap();
        assert_eq!(record.status.as_deref(), Some("read"));
        assert_eq!(record.idempotency_key.as_deref(), Some("k"));
        assert!(state.count_cost_once("wamid.1", "p", "2026-11", "marketing", "regular").await.unwrap());
        assert!(!state.count_cost_once("wamid.1", "p", "2026-11", "marketing", "regular").await.unwrap());
        assert_eq!(state.costs("p", "2026-11").unwrap(), [("marketing#regular".to_owned(), 1)]);
    }

    #[tokio::test]
    async fn send_records_past_their_expiry_are_deleted() {
        let state = LocalState::new(&LocalDb::memory().unwrap());
        let now = 1_000_000_000_000; // ms
        for i in 0..1_203 {
            let key = format!("old-{i}");
            assert_eq!(state.claim(&key, now, now + 30_000).await.unwrap(), Claim::Acquired);
            state.complete(&key, "{}", None, None, now / 1000 + 10).await.unwrap();
        }
        assert_eq!(state.claim("kept", now, now + 30_000).await.unwrap(), Claim::Acquired);
        state.complete("kept", "{}", None, None, now / 1000 + 90_000).await.unwrap();
        assert_eq!(state.expire(now / 1000 + 9).unwrap(), 0, "none expired yet");
        assert_eq!(state.expire(now / 1000 + 11).unwrap(), 1_203);
        assert!(matches!(state.claim("kept", now + 1, now + 30_000).await.unwrap(), Claim::Completed { .. }));
        assert_eq!(state.claim("old-7", now + 1, now + 30_000).await.unwrap(), Claim::Acquired);
    }

    #[tokio::test]
    async fn a_claim_taken_over_from_an_unfinished_attempt_says_so() {
        let state = LocalState::new(&LocalDb::memory().unwrap());
        let now = 1_000_000_000_000;
        assert_eq!(state.claim("k", now, now + 1_000).await.unwrap(), Claim::Acquired);
        assert_eq!(state.claim("k", now + 500, now + 30_000).await.unwrap(), Claim::InProgress);
        assert_eq!(state.claim("k", now + 1_001, now + 30_000).await.unwrap(), Claim::Reclaimed);
        state.release("k").await.unwrap();
        assert_eq!(state.claim("k", now + 1_002, now + 30_000).await.unwrap(), Claim::Acquired);
    }

    #[tokio::test]
    async fn statuses_expire_after_ninety_days() {
        let state = LocalState::new(&LocalDb::memory().unwrap());
        let update = StatusUpdate {
            wamid: "wamid.1",
            status: &StatusKind::Delivered,
            at: Some(5),
            recipient: None,
            callback_data: None,
            pricing: None,
            pricing_model: None,
        };
        assert!(state.apply_status(&update).await.unwrap().advanced);
        assert!(state.count_cost_once("wamid.2", "p", "2026-11", "marketing", "regular").await.unwrap());
        let now_s = u64::try_from(crate::now_ms() / 1000).unwrap();
        let day = 86_400;
        assert_eq!(state.expire(now_s + 89 * day).unwrap(), 0);
        assert!(state.message("wamid.1").unwrap().is_some());
        assert_eq!(state.expire(now_s + 91 * day).unwrap(), 2);
        assert!(state.message("wamid.1").unwrap().is_none());
    }

    #[tokio::test]
    async fn a_recipients_131056_run_is_forgotten_after_fifteen_minutes() {
        let state = LocalState::new(&LocalDb::memory().unwrap());
        let t0: u64 = 1_000_000_000_000; // ms
        let memory = u64::try_from(PAIR_MEMORY_MS).unwrap();
        assert_eq!(state.pair_hit("p", "+1555", t0).await.unwrap(), 1);
        assert_eq!(state.pair_hit("p", "1555", t0 + 1000).await.unwrap(), 2);
        assert_eq!(state.expire((t0 + memory) / 1000).unwrap(), 0, "still remembered");
        assert_eq!(state.expire((t0 + 2000 + memory) / 1000).unwrap(), 1);
        assert_eq!(state.pair_hit("p", "1555", t0 + 2000).await.unwrap(), 1, "a fresh run");
    }

    #[tokio::test]
    async fn linked_ids_resolve_to_one_person_and_unlinking_separates_them() {
        use wa_core::identity::resolve;
        let state = LocalState::new(&LocalDb::memory().unwrap());
        state.record_inbound("p", "US.1", 100, Some("Ana")).await.unwrap();
        state.mark_window_closed("p", "16505551234", 50).await.unwrap();
        state.set_marketing_opt_out("p", "16505551234", true, 60).await.unwrap();
        let alone = resolve(&state, "p", "16505551234").await.unwrap();
        assert_eq!(alone.facts.last_inbound_at, None, "not linked yet");
        state.link("p", &["16505551234".into(), "US.1".into(), "US.ENT.9".into()]).await.unwrap();
        for id in ["16505551234", "+16505551234", "US.1", "US.ENT.9"] {
            let person = resolve(&state, "p", id).await.unwrap();
            assert_eq!(person.ids, ["16505551234", "US.1", "US.ENT.9"], "{id}");
            assert_eq!(person.facts.last_inbound_at, Some(100), "{id}");
            assert!(person.facts.marketing_opt_out, "{id}: the opt-out under the phone is kept");
            assert!(person.facts.service_window_open(150), "{id}: the 131047 came before the message");
        }
        // A new BSUID linked to the old one; the old phone given up.
        state.link("p", &["US.1".into(), "US.2".into(), "12195555358".into()]).await.unwrap();
        state.detach("p", "16505551234", 300).await.unwrap();
        let old = state.records("p", &["16505551234".into()]).await.unwrap();
        assert_eq!(old[0].retired_at, Some(300));
        let person = resolve(&state, "p", "12195555358").await.unwrap();
        assert!(person.ids.contains(&"US.1".to_owned()) && !person.ids.contains(&"16505551234".to_owned()));
        assert_eq!(person.facts.last_inbound_at, Some(100));
        let old_phone = resolve(&state, "p", "16505551234").await.unwrap();
        assert_eq!(old_phone.facts.last_inbound_at, None, "the old phone no longer reaches the person");
    }

    #[tokio::test]
    async fn a_hold_is_counted_once_probed_once_and_cleared() {
        use wa_core::hold::next_hold;
        let state = LocalState::new(&LocalDb::memory().unwrap());
        assert_eq!(state.hold("p").await.unwrap(), None);
        let first = next_hold(None, 368, 1_000);
        assert!(state.put_hold("p", &first, 0).await.unwrap());
        assert!(!state.put_hold("p", &first, 0).await.unwrap(), "a second sender's error counts once");
        assert_eq!(state.hold("p").await.unwrap(), Some(first.clone()));
        assert!(!state.claim_probe("p", 2_000, 62_000).await.unwrap(), "not before the cool-down ends");
        assert!(state.claim_probe("p", first.until_ms, first.until_ms + 60_000).await.unwrap());
        assert!(!state.claim_probe("p", first.until_ms + 1, first.until_ms + 60_001).await.unwrap(), "one probe");
        let second = next_hold(Some(&first), 368, first.until_ms + 10);
        assert!(state.put_hold("p", &second, 1).await.unwrap());
        assert_eq!(state.hold("p").await.unwrap().unwrap().strikes, 2);
        assert_eq!(state.holds().unwrap().len(), 1);
        state.clear_hold("p").await.unwrap();
        assert_eq!(state.hold("p").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_cost_ledger_counts_a_message_once() {
        let state = LocalState::new(&LocalDb::memory().unwrap());
        assert!(state.count_cost_once("w", "p", "2026-12", "marketing_lite", "regular").await.unwrap());
        assert!(!state.count_cost_once("w", "p", "2026-12", "marketing_lite", "regular").await.unwrap());
        assert_eq!(state.costs("p", "2026-12").unwrap(), [("marketing_lite#regular".to_owned(), 1)]);
    }

    #[tokio::test]
    async fn conversations_keep_the_newest_facts() {
        let state = LocalState::new(&LocalDb::memory().unwrap());
        state.record_inbound("p", "u", 100, Some("Ana")).await.unwrap();
        state.record_inbound("p", "u", 50, None).await.unwrap();
        assert!(state.set_marketing_opt_out("p", "u", true, 200).await.unwrap());
        assert!(!state.set_marketing_opt_out("p", "u", false, 150).await.unwrap(), "older change ignored");
        let facts = wa_core::identity::resolve(&state, "p", "u").await.unwrap().facts;
        assert_eq!((facts.last_inbound_at, facts.marketing_opt_out), (Some(100), true));
        assert_eq!(state.profile_name("p", "u").unwrap().as_deref(), Some("Ana"));
        let r = state.reserve("p", 10, 1000, 5_000, 1_000_000).await.unwrap().unwrap();
        assert_eq!((r.start_us, r.new_tat_us), (5_000, 15_000));
        assert_eq!(state.pair_hit("p", "+1", 0).await.unwrap(), 1);
        assert_eq!(state.pair_hit("p", "1", 10).await.unwrap(), 2);
    }
}
