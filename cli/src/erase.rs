//! `wa erase`: one person's data deleted on request (DPDP, GDPR), found by phone number or BSUID:
//! the person is resolved through every linked id first, then every record, file and queued
//! message holding one of those ids goes. `--dry-run` counts without deleting. The report counts;
//! it never prints the ids.

use std::fmt::Write as _;

use wa_core::identity::resolve;
use wa_infra::dynamo::StateTable;
use wa_infra::s3::S3Blobs;

fn report(ids: usize, counts: &std::collections::BTreeMap<&'static str, usize>, dry_run: bool, note: &str) -> String {
    let mut out = String::new();
    let verb = if dry_run { "would delete" } else { "deleted" };
    let _ = writeln!(out, "the person has {ids} linked id(s) for this business number");
    if counts.values().all(|n| *n == 0) {
        let _ = writeln!(out, "  nothing found");
    }
    for (kind, n) in counts.iter().filter(|(_, n)| **n > 0) {
        let _ = writeln!(out, "  {verb} {n} {kind}");
    }
    out.push_str(note);
    out
}

/// On AWS: the state table (scanned), and the payload bucket's media files of the person.
pub async fn erase_aws(
    table: &StateTable,
    media: Option<&S3Blobs>,
    phone_number_id: &str,
    user: &str,
    dry_run: bool,
) -> Result<String, String> {
    let person = resolve(table, phone_number_id, user).await.map_err(|e| e.to_string())?;
    let mut counts = table.erase(phone_number_id, &person.ids, dry_run).await.map_err(|e| e.to_string())?;
    if let Some(media) = media {
        let keys = media.media_of(phone_number_id, &person.ids).await.map_err(|e| e.to_string())?;
        counts.insert("media files", keys.len());
        if !dry_run {
            for key in &keys {
                media.delete(key).await.map_err(|e| e.to_string())?;
            }
        }
    }
    let note =
        "messages still in the SQS queues expire with them (7 days; DLQs 14): `wa dlq list` shows what a DLQ holds\n";
    Ok(report(person.ids.len(), &counts, dry_run, note))
}

/// On the local stack: state, media files and queued messages.
pub async fn erase_local(
    db: &wa_infra_local::LocalDb,
    phone_number_id: &str,
    user: &str,
    dry_run: bool,
) -> Result<String, String> {
    let state = wa_infra_local::LocalState::new(db);
    let person = resolve(&state, phone_number_id, user).await.map_err(|e| e.to_string())?;
    let counts = state.erase(phone_number_id, &person.ids, dry_run).map_err(|e| e.to_string())?;
    Ok(report(person.ids.len(), &counts, dry_run, ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_core::ports::{BlobStore, ConversationStore, MediaStore, MediaUpload};

    #[tokio::test]
    async fn a_person_is_erased_under_every_id_and_nobody_else() {
        let db = wa_infra_local::LocalDb::memory().unwrap();
        let state = wa_infra_local::LocalState::new(&db);
        let ids = ["16505551234".to_owned(), "US.1".to_owned()];
        state.link("p", &ids).await.unwrap();
        state.record_inbound("p", "US.1", 100, Some("Ana")).await.unwrap();
        state.set_marketing_opt_out("p", "16505551234", true, 50).await.unwrap();
        state.record_inbound("p", "16505559999", 100, Some("Ben")).await.unwrap();
        let blobs = wa_infra_local::LocalBlobs::new(&db);
        let mut upload = blobs.begin("media/p/aa.pdf", "application/pdf", Some("US.1")).await.unwrap();
        upload.part(b"%PDF".to_vec()).await.unwrap();
        upload.complete().await.unwrap();
        blobs.put("media/p/bb.pdf", b"x".to_vec(), "application/pdf").await.unwrap();
        let queue = wa_infra_local::LocalQueue::new(&db, "events", false, 262_144, 5);
        queue.send(r#"{"kind":"message","user_id":"US.1","payload":{"from":"16505551234"}}"#, None, None).unwrap();
        queue.send(r#"{"kind":"message","user_id":"US.2"}"#, None, None).unwrap();

        let dry = erase_local(&db, "p", "+16505551234", true).await.unwrap();
        assert!(dry.contains("2 linked id(s)") && dry.contains("would delete 2 conversation records"), "{dry}");
        assert!(dry.contains("would delete 1 media files") && dry.contains("would delete 1 queued messages"), "{dry}");
        assert!(!dry.contains("16505551234") && !dry.contains("US.1"), "no ids in the report: {dry}");
        assert!(resolve(&state, "p", "US.1").await.unwrap().known, "a dry run deletes nothing");

        let done = erase_local(&db, "p", "US.1", false).await.unwrap();
        assert!(done.contains("deleted 2 conversation records") && done.contains("deleted 2 links"), "{done}");
        assert!(!resolve(&state, "p", "16505551234").await.unwrap().known);
        assert!(!resolve(&state, "p", "US.1").await.unwrap().known);
        assert!(resolve(&state, "p", "16505559999").await.unwrap().known, "someone else is kept");
        assert!(blobs.get("media/p/aa.pdf").await.is_err());
        assert!(blobs.get("media/p/bb.pdf").await.is_ok(), "a file of nobody's is kept");
        assert_eq!(queue.peek(0, 10).unwrap().len(), 1, "the other user's event is kept");
        let again = erase_local(&db, "p", "US.1", false).await.unwrap();
        assert!(again.contains("nothing found"), "{again}");
    }
}
