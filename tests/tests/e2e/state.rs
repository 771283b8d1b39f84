//! State rules for #5 applied in DynamoDB on moto: inbound dedupe and the monotonic status.

use wa_core::webhook::StatusKind;
use wa_infra::dynamo::{DEDUPE_TTL_SECONDS, StateTable, StatusUpdate};
use wa_tests::{create_state_table, moto_config};

async fn table() -> StateTable {
    let aws = moto_config().await;
    let name = create_state_table(&aws).await;
    StateTable::new(aws_sdk_dynamodb::Client::new(&aws), name)
}

fn now_s() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn duplicates_sequential_concurrent_and_days_later_are_seen_once() {
    let table = table().await;
    let now = now_s();
    assert!(table.first_seen("wamid.A", now).await.unwrap());
    assert!(!table.first_seen("wamid.A", now + 1).await.unwrap(), "sequential duplicate");
    assert!(!table.first_seen("wamid.A", now + 6 * 86_400).await.unwrap(), "six days later");

    // A storm of ten concurrent deliveries of one event: exactly one wins.
    let storm = (0..10).map(|_| table.first_seen("wamid.B:delivered", now));
    let results = futures_util::future::join_all(storm).await;
    assert_eq!(results.iter().filter(|r| *r.as_ref().unwrap()).count(), 1);

    // Past its TTL but not yet deleted by DynamoDB: counts as absent.
    assert!(table.first_seen("wamid.A", now + DEDUPE_TTL_SECONDS + 1).await.unwrap());
}

fn update<'a>(wamid: &'a str, status: &'a StatusKind) -> StatusUpdate<'a> {
    StatusUpdate {
        wamid,
        status,
        at: Some(1),
        recipient: Some("16505551234"),
        callback_data: Some("cb"),
        pricing: None,
    }
}

#[tokio::test]
async fn all_24_orderings_end_where_the_rules_say() {
    let table = table().await;
    let all = [StatusKind::Sent, StatusKind::Delivered, StatusKind::Read, StatusKind::Failed];
    let mut orderings = Vec::new();
    for a in 0..4 {
        for b in 0..4 {
            for c in 0..4 {
                for d in 0..4 {
                    let idx = [a, b, c, d];
                    if (0..4).all(|i| idx.contains(&i)) {
                        orderings.push(idx.map(|i| all[i].clone()));
                    }
                }
            }
        }
    }
    assert_eq!(orderings.len(), 24);
    for (n, order) in orderings.iter().enumerate() {
        let wamid = format!("wamid.order{n}");
        for status in order {
            table.apply_status(&update(&wamid, status)).await.unwrap();
        }
        let expected = order.iter().find(|s| matches!(s, StatusKind::Read | StatusKind::Failed)).unwrap();
        assert_eq!(table.message_status(&wamid).await.unwrap().as_deref(), Some(expected.as_str()), "{order:?}");
    }
    // Concurrent, out-of-order updates never downgrade either.
    let statuses = [StatusKind::Read, StatusKind::Sent, StatusKind::Delivered, StatusKind::Sent, StatusKind::Delivered];
    let updates: Vec<StatusUpdate<'_>> = statuses.iter().map(|s| update("wamid.race", s)).collect();
    futures_util::future::join_all(updates.iter().map(|u| table.apply_status(u))).await;
    assert_eq!(table.message_status("wamid.race").await.unwrap().as_deref(), Some("read"));
}
