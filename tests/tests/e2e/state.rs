//! State rules for #5 applied in DynamoDB on moto: inbound dedupe and the monotonic status.

use wa_core::conversation::StatusUpdate;
use wa_core::webhook::StatusKind;
use wa_infra::dynamo::StateTable;
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
async fn claims_dedupe_sequential_concurrent_and_late_duplicates_and_honour_ttl_lag() {
    use wa_core::ports::{Claim, IdempotencyStore};
    let table = table().await;
    // One clock reading for the whole test: reading it again could cross a second and move the
    // TTL edge checked below by one.
    let start_s = now_s();
    let now_ms = start_s * 1000;
    let key = "event:wamid.A";
    assert_eq!(table.claim(key, now_ms, now_ms + 30_000).await.unwrap(), Claim::Acquired);
    table.complete(key, "{}", None, None, start_s + 14 * 86_400).await.unwrap();
    table.mark_published(key).await.unwrap();
    let later = now_ms + 6 * 86_400 * 1000;
    assert!(
        matches!(table.claim(key, later, later + 30_000).await.unwrap(), Claim::Completed { published: true, .. }),
        "six days later"
    );

    // A storm of ten concurrent claims of one new event: exactly one wins.
    let storm = (0..10).map(|_| table.claim("event:wamid.B:delivered", now_ms, now_ms + 30_000));
    let results = futures_util::future::join_all(storm).await;
    assert_eq!(results.iter().filter(|r| matches!(r, Ok(Claim::Acquired))).count(), 1);
    assert_eq!(results.iter().filter(|r| matches!(r, Ok(Claim::InProgress))).count(), 9);

    // Past its TTL but not yet deleted by DynamoDB: counts as absent.
    let expired = now_ms + (14 * 86_400 + 1) * 1000;
    assert_eq!(table.claim(key, expired, expired + 30_000).await.unwrap(), Claim::Acquired);
    // A claim whose holder died is taken over once it expires, not before.
    assert_eq!(table.claim("event:C", now_ms, now_ms + 1000).await.unwrap(), Claim::Acquired);
    assert_eq!(table.claim("event:C", now_ms + 500, now_ms + 30_000).await.unwrap(), Claim::InProgress);
    // Taken over: the new owner learns that an earlier attempt stopped mid-way.
    assert_eq!(table.claim("event:C", now_ms + 1001, now_ms + 30_000).await.unwrap(), Claim::Reclaimed);
    // Released (nothing was sent): the next claim is a new one.
    table.release("event:C").await.unwrap();
    assert_eq!(table.claim("event:C", now_ms + 1002, now_ms + 30_000).await.unwrap(), Claim::Acquired);
}

fn update<'a>(wamid: &'a str, status: &'a StatusKind) -> StatusUpdate<'a> {
    StatusUpdate {
        wamid,
        status,
        at: Some(1),
        recipient: Some("16505551234"),
        callback_data: Some("cb"),
        pricing: None,
        pricing_model: None,
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

#[tokio::test]
async fn the_service_window_only_moves_forward_and_has_exact_edges() {
    use wa_core::conversation::service_window_open;
    let table = table().await;
    let last = 1_750_000_000;
    table.record_inbound("P", "16505551234", last, Some("Sheena")).await.unwrap();
    // A redelivered older message does not move the window back.
    table.record_inbound("P", "16505551234", last - 3600, Some("Old name")).await.unwrap();
    let (stored, opted_out, name) = table.conversation("P", "16505551234").await.unwrap().unwrap();
    assert_eq!(stored, Some(last));
    assert!(!opted_out);
    assert_eq!(name.as_deref(), Some("Sheena"));
    assert!(service_window_open(stored, last + 23 * 3600 + 59 * 60 + 59), "open at 23:59:59");
    assert!(!service_window_open(stored, last + 24 * 3600 + 1), "closed at 24:00:01");
    table.record_inbound("P", "16505551234", last + 100, None).await.unwrap();
    assert_eq!(table.conversation("P", "16505551234").await.unwrap().unwrap().0, Some(last + 100));
    assert!(table.conversation("P", "someone-else").await.unwrap().is_none());
}

#[tokio::test]
async fn opt_out_and_resume_apply_in_time_order() {
    let table = table().await;
    assert!(table.set_marketing_opt_out("P", "US.1", true, 100).await.unwrap(), "STOP");
    assert!(table.conversation("P", "US.1").await.unwrap().unwrap().1);
    assert!(table.set_marketing_opt_out("P", "US.1", false, 200).await.unwrap(), "START");
    assert!(!table.conversation("P", "US.1").await.unwrap().unwrap().1);
    // A late, redelivered STOP from before the START changes nothing.
    assert!(!table.set_marketing_opt_out("P", "US.1", true, 150).await.unwrap());
    assert!(!table.conversation("P", "US.1").await.unwrap().unwrap().1);
}

#[tokio::test]
async fn the_cost_ledger_counts_by_category_and_pricing_type() {
    let table = table().await;
    for (category, kind) in [
        ("marketing", "regular"),
        ("marketing", "regular"),
        ("utility", "regular"),
        ("service", "free_customer_service"),
    ] {
        table.add_cost("P", "2026-11", category, kind).await.unwrap();
    }
    table.add_cost("P", "2026-10", "marketing", "regular").await.unwrap();
    let costs = table.costs("P", "2026-11").await.unwrap();
    assert_eq!(
        costs,
        [
            ("marketing#regular".to_owned(), 2),
            ("service#free_customer_service".to_owned(), 1),
            ("utility#regular".to_owned(), 1)
        ]
    );
    assert_eq!(table.costs("P", "2026-12").await.unwrap(), []);

    // Once per wamid: the second transaction fails its condition and leaves the counter as it was
    // (moto's rollback, as the harness patches it, included).
    for _ in 0..3 {
        table.count_cost_once("wamid.ONCE", "Q", "2026-11", "utility", "regular").await.unwrap();
    }
    assert_eq!(table.costs("Q", "2026-11").await.unwrap(), [("utility#regular".to_owned(), 1)]);
}

/// The harness's moto must keep DynamoDB's promise that conditional writes are atomic (moto alone
/// does not: see `wa_tests::moto`); every claim, rate slot and status rank here relies on it.
/// Without the harness's lock this fails now and then on an idle machine, and often under load.
#[tokio::test]
async fn concurrent_conditional_writes_to_one_item_never_both_succeed() {
    use wa_core::ports::{Claim, IdempotencyStore};
    let table = table().await;
    let now_ms = now_s() * 1000;
    let keys: Vec<String> = (0..40).map(|i| format!("event:wamid.storm{i}")).collect();
    let owners: Vec<usize> = (0..keys.len()).flat_map(|k| [k; 6]).collect();
    let results =
        futures_util::future::join_all(owners.iter().map(|&k| table.claim(&keys[k], now_ms, now_ms + 30_000))).await;
    for (k, key) in keys.iter().enumerate() {
        let acquired =
            owners.iter().zip(&results).filter(|(o, r)| **o == k && matches!(r, Ok(Claim::Acquired))).count();
        assert_eq!(acquired, 1, "{key}: {acquired} concurrent claims acquired it");
    }
    // Conditional updates: `read` sent together with lower ranks always ends as `read`.
    let statuses = [StatusKind::Read, StatusKind::Sent, StatusKind::Delivered, StatusKind::Sent, StatusKind::Delivered];
    let wamids: Vec<String> = (0..40).map(|i| format!("wamid.race{i}")).collect();
    let updates: Vec<StatusUpdate<'_>> =
        wamids.iter().flat_map(|wamid| statuses.iter().map(move |status| update(wamid, status))).collect();
    futures_util::future::join_all(updates.iter().map(|u| table.apply_status(u))).await;
    for wamid in &wamids {
        assert_eq!(table.message_status(wamid).await.unwrap().as_deref(), Some("read"), "{wamid} was downgraded");
    }
}

/// Meta's messaging limit in DynamoDB (#26): 40 senders counting 40 new users at once under a
/// limit of 25 count exactly 25 (the transaction's conditions, on moto); a user counted once is
/// `Already` after; an expired bucket goes with the next count; an older tier announcement does
/// not undo a newer one; a throughput upgrade reaches the number whichever fact came first.
#[tokio::test]
async fn the_messaging_limit_counts_each_user_once_and_never_past_the_limit() {
    use wa_core::limit::{BUCKET_S, Counted, Tier, count};
    use wa_core::ports::LimitStore;
    let table = table().await;
    let now = now_s();
    let hour = now / BUCKET_S;
    let portfolio = wa_tests::unique("p");
    // An old bucket, outside the window, to be removed.
    let old = wa_core::limit::Count {
        hour: hour - 30,
        cap: 10,
        neighbours: [(hour - 31, 0), (hour - 29, 0)],
        expired: vec![],
        user_cutoff_s: 0,
        at_s: now - 30 * BUCKET_S,
    };
    assert_eq!(table.count_user(&portfolio, "old-user", &old).await.unwrap(), Counted::New);

    // Each sender: read the window, count, and on Full read again (as the sender does), 8 times.
    let sender = |i: usize| {
        let table = table.clone();
        let portfolio = portfolio.clone();
        async move {
            for _ in 0..8 {
                let window = table.limit_facts(&[], &[&portfolio]).await.unwrap().windows.remove(&portfolio).unwrap();
                match table
                    .count_user(&portfolio, &format!("1650555{i:04}"), &count(25, &window.buckets, now))
                    .await
                    .unwrap()
                {
                    Counted::Full => tokio::time::sleep(std::time::Duration::from_millis(5 * i as u64 % 40)).await,
                    other => return other,
                }
            }
            Counted::Full
        }
    };
    let results = futures_util::future::join_all((0..40).map(sender)).await;
    assert_eq!(results.iter().filter(|r| **r == Counted::New).count(), 25, "{results:?}");
    let window = table.limit_facts(&[], &[&portfolio]).await.unwrap().windows.remove(&portfolio).unwrap();
    assert_eq!(window.usage(Some(Tier::Limited(25)), now), (25, Some(25)));
    assert!(!window.buckets.contains_key(&(hour - 30)), "the expired bucket was removed: {:?}", window.buckets);
    let counted: Vec<usize> = (0..40).filter(|i| results[*i] == Counted::New).collect();
    let again = format!("1650555{:04}", counted[0]);
    assert_eq!(
        table.count_user(&portfolio, &again, &count(100, &window.buckets, now)).await.unwrap(),
        Counted::Already
    );
    assert_eq!(table.reached_at(&portfolio, &again).await.unwrap(), Some(now));
    let window = table.limit_facts(&[], &[&portfolio]).await.unwrap().windows.remove(&portfolio).unwrap();
    assert_eq!(window.usage(Some(Tier::Limited(100)), now).0, 25, "a repeat user's increment is taken back");
    // One new user counted by ten senders at once: once.
    let same = |_| {
        let (table, portfolio, buckets) = (table.clone(), portfolio.clone(), window.buckets.clone());
        async move { table.count_user(&portfolio, "16505559999", &count(100, &buckets, now)).await.unwrap() }
    };
    let results = futures_util::future::join_all((0..10).map(same)).await;
    let new = results.iter().filter(|r| **r == Counted::New).count();
    let already = results.iter().filter(|r| **r == Counted::Already).count();
    assert_eq!(new, 1, "{results:?}");
    let window = table.limit_facts(&[], &[&portfolio]).await.unwrap().windows.remove(&portfolio).unwrap();
    assert_eq!(window.usage(Some(Tier::Limited(100)), now).0, 26, "counted once: {results:?}");
    assert_eq!(new + already + results.iter().filter(|r| **r == Counted::Full).count(), 10);

    table.record_tier(&portfolio, Tier::Limited(250), 10).await.unwrap();
    table.record_tier(&portfolio, Tier::Limited(2000), 5).await.unwrap();
    let tier = |t: &StateTable| {
        let t = t.clone();
        let p = portfolio.clone();
        async move { t.limit_facts(&[], &[&p]).await.unwrap().windows.remove(&p).unwrap().tier }
    };
    assert_eq!(tier(&table).await, Some(Tier::Limited(250)), "an older announcement came late");
    table.record_tier(&portfolio, Tier::Unlimited, 11).await.unwrap();
    assert_eq!(tier(&table).await, Some(Tier::Unlimited));

    let number = wa_tests::unique("N");
    table.record_number("+1 555 000 7777", None, Some(1000)).await.unwrap();
    assert!(table.limit_facts(&[&number], &[]).await.unwrap().rates.is_empty());
    table.record_number("15550007777", Some(&number), None).await.unwrap();
    assert_eq!(table.limit_facts(&[&number], &[]).await.unwrap().rates[&number], 1000);
    let view = wa_cli::LimitView {
        portfolios: wa_core::limit::Portfolios::parse(&format!("{number}={portfolio}")).unwrap(),
        configured: Some(Tier::Limited(250)),
    };
    let lines = wa_cli::limit_lines(&table, &number, &view, now).await.unwrap();
    assert!(lines.contains("send rate: 1000 messages/s"), "{lines}");
    assert!(lines.contains(&format!("portfolio {portfolio}): unlimited (announced by Meta)")), "{lines}");
}
