//! One person, several ids: a user of a business number is reachable by phone number (`wa_id`),
//! business-scoped user id (BSUID, `US.1349…`) and parent BSUID (`US.ENT.1181…`). Meta keys
//! webhooks by BSUID since 2026-03-31; producers address people by phone. This module decides which
//! ids belong together and what one person's conversation facts are when they were recorded under
//! several of them, pure; the stores keep one record per id with the ids it is linked to.
//!
//! **Merging** (a send or a consent change recorded under the phone before Meta told us the BSUID):
//! the facts of all linked records combine field by field, in an order-independent way:
//! - windows: the latest last message, the latest 131047, the latest free-entry-point end;
//! - consent: the change with the latest time wins; at equal times an opt-out wins, and an opt-out
//!   recorded without a time is never overridden by a merge (it is never lost).
//!
//! **Identity changes**: `user_changed_number` links the new phone and BSUIDs to the previous
//! BSUIDs and detaches the old phone (`from`), which may be given to someone else; a payload dated
//! before the change (a late redelivery) never links that phone again ([`linkable`]);
//! `user_changed_user_id` links the new BSUIDs to the previous ones.

use std::collections::BTreeSet;

use crate::conversation::ConversationFacts;
use crate::webhook::{FlexString, Message, Status};

/// Most ids one person is resolved to (a guard against a link storm; a person has 2–6).
pub const MAX_IDS: usize = 32;

/// What kind of id a string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// E.164 digits (a `+` is dropped before storing).
    Phone,
    /// A business-scoped user id, `CC.<alphanumerics>`.
    Bsuid,
    /// A parent business-scoped user id, `CC.ENT.<alphanumerics>`.
    ParentBsuid,
}

/// The kind of `id`; `None` when it is neither a phone number nor a (parent) BSUID.
#[must_use]
pub fn id_kind(id: &str) -> Option<IdKind> {
    let digits = id.strip_prefix('+').unwrap_or(id);
    if (5..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(IdKind::Phone);
    }
    let (country, rest) = id.split_once('.')?;
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let (kind, tail) = match rest.strip_prefix("ENT.") {
        Some(tail) => (IdKind::ParentBsuid, tail),
        None => (IdKind::Bsuid, rest),
    };
    ((1..=256).contains(&tail.len()) && tail.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(kind)
}

/// The stored form of an id: phone numbers without `+`, anything else as given.
#[must_use]
pub fn normalize_id(id: &str) -> &str {
    match id_kind(id) {
        Some(IdKind::Phone) => id.trim_start_matches('+'),
        _ => id,
    }
}

/// The ids one payload says belong to one person (deduplicated, in stored form).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ids(BTreeSet<String>);

impl Ids {
    /// Adds `id` when it is a phone number or a (parent) BSUID.
    pub fn add(&mut self, id: Option<&str>) {
        if let Some(id) = id.filter(|id| id_kind(id).is_some()) {
            self.0.insert(normalize_id(id).to_owned());
        }
    }

    /// The ids, sorted.
    #[must_use]
    pub fn ids(&self) -> Vec<String> {
        self.0.iter().cloned().collect()
    }

    /// More than one id: there is a link to learn.
    #[must_use]
    pub fn links_anything(&self) -> bool {
        self.0.len() > 1
    }

    /// Whether `id` is among them.
    #[must_use]
    pub fn contains(&self, id: &str) -> bool {
        self.0.contains(normalize_id(id))
    }
}

fn text<'a>(value: Option<&'a serde_json::Value>, key: &str) -> Option<&'a str> {
    value.and_then(|v| v.get(key)).and_then(serde_json::Value::as_str)
}

/// The ids of a `contacts[]` object: `wa_id`, `user_id`, `parent_user_id`.
fn contact_ids(ids: &mut Ids, contact: Option<&serde_json::Value>) {
    let wa_id = contact.and_then(|c| c.get("wa_id")).and_then(|v| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    ids.add(wa_id.as_deref());
    ids.add(text(contact, "user_id"));
    ids.add(text(contact, "parent_user_id"));
}

/// The ids of an inbound message and its matching contact: `from`, `from_user_id`,
/// `from_parent_user_id`, and the contact's `wa_id`, `user_id`, `parent_user_id`. A system message
/// about an identity change is read by [`identity_change`] instead (its `from` may be the old phone).
#[must_use]
pub fn message_ids(message: &Message, contact: Option<&serde_json::Value>) -> Ids {
    let mut ids = Ids::default();
    if identity_change(message).is_some() {
        return ids;
    }
    ids.add(message.from.as_ref().map(FlexString::as_str));
    ids.add(message.from_user_id.as_deref());
    ids.add(message.extra.get("from_parent_user_id").and_then(serde_json::Value::as_str));
    contact_ids(&mut ids, contact);
    ids
}

/// The parent id of a status, under any of the three spellings Meta's pages and libraries use.
#[must_use]
pub fn status_parent_id(status: &Status) -> Option<&str> {
    ["parent_recipient_user_id", "recipient_parent_user_id", "parent_user_id"]
        .iter()
        .find_map(|key| status.extra.get(*key).and_then(serde_json::Value::as_str))
}

/// The ids of a status and its matching contact (`contacts[]` on sent, delivered and read):
/// `recipient_id` (a phone, or a group id, which is not a person and is ignored),
/// `recipient_user_id`, the parent id, and the contact's ids.
#[must_use]
pub fn status_ids(status: &Status, contact: Option<&serde_json::Value>) -> Ids {
    let mut ids = Ids::default();
    ids.add(status.recipient_id.as_ref().map(FlexString::as_str));
    ids.add(status.recipient_user_id.as_deref());
    ids.add(status_parent_id(status));
    contact_ids(&mut ids, contact);
    ids
}

/// The ids of one `contacts[]` entry of a send response: `input` (what we sent to), `wa_id`,
/// `user_id`.
#[must_use]
pub fn send_response_ids(contact: &serde_json::Value) -> Ids {
    let mut ids = Ids::default();
    ids.add(text(Some(contact), "input"));
    contact_ids(&mut ids, Some(contact));
    ids
}

/// A `system` message announcing that a user's ids changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityChange {
    /// `user_changed_number` (a new phone) or `user_changed_user_id` (only the BSUID changed).
    pub number_changed: bool,
    /// The ids the person has now, with the previous BSUIDs (the person's history follows them).
    pub now: Ids,
    /// The phone the person no longer has (`from` of a number change), to unlink.
    pub retired_phone: Option<String>,
    /// The new BSUID, when given.
    pub user_id: Option<String>,
}

/// The identity change a message announces, if it is one.
#[must_use]
pub fn identity_change(message: &Message) -> Option<IdentityChange> {
    let system = message.system.as_ref()?;
    let number_changed = match system.kind.as_deref() {
        Some("user_changed_number") => true,
        Some("user_changed_user_id") => false,
        _ => return None,
    };
    let extra = |key: &str| system.extra.get(key).and_then(serde_json::Value::as_str);
    let mut now = Ids::default();
    now.add(system.wa_id.as_ref().map(FlexString::as_str));
    now.add(extra("user_id"));
    now.add(extra("parent_user_id"));
    now.add(extra("previous_user_id"));
    now.add(extra("previous_parent_user_id"));
    let from = message.from.as_ref().map(FlexString::as_str).filter(|f| id_kind(f) == Some(IdKind::Phone));
    let new_phone = system.wa_id.as_ref().map(|w| normalize_id(w.as_str()));
    let retired_phone =
        if number_changed { from.map(normalize_id).filter(|f| Some(*f) != new_phone).map(str::to_owned) } else { None };
    if !number_changed {
        // The phone did not change: it stays with the person.
        now.add(from);
    }
    let user_id = extra("user_id").filter(|id| id_kind(id) == Some(IdKind::Bsuid)).map(str::to_owned);
    Some(IdentityChange { number_changed, now, retired_phone, user_id })
}

/// One id's stored conversation record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationRecord {
    /// The id it is stored under.
    pub id: String,
    /// The user's last message, Unix seconds.
    pub last_inbound_at: Option<i64>,
    /// When Meta last answered 131047 (window closed), Unix seconds.
    pub window_closed_at: Option<i64>,
    /// The end of a free-entry-point window, Unix seconds.
    pub free_entry_point_until: Option<i64>,
    /// Opted out of marketing, as of `consent_at`.
    pub marketing_opt_out: bool,
    /// When the consent last changed, Unix seconds.
    pub consent_at: Option<i64>,
    /// The profile name (display only).
    pub profile_name: Option<String>,
    /// The username (`@…`, display only).
    pub username: Option<String>,
    /// The ids this one is linked to.
    pub links: Vec<String>,
    /// When its owner gave this id up (a phone number after `user_changed_number`), Unix seconds:
    /// payloads from before then never link it again.
    pub retired_at: Option<i64>,
}

/// The ids of a payload dated `at` that may be linked, given their stored records: an id given up
/// (retired) at or after `at` is left out. `None` when nothing is left to link, or when the
/// records already link every remaining id to every other.
#[must_use]
pub fn linkable(ids: &Ids, records: &[ConversationRecord], at: i64) -> Option<Vec<String>> {
    let retired = |id: &str| records.iter().any(|r| r.id == id && r.retired_at.is_some_and(|t| t >= at));
    let ids: Vec<String> = ids.ids().into_iter().filter(|id| !retired(id)).collect();
    if ids.len() < 2 {
        return None;
    }
    let known = ids.iter().all(|id| {
        records.iter().find(|r| &r.id == id).is_some_and(|r| ids.iter().all(|o| o == id || r.links.contains(o)))
    });
    (!known).then_some(ids)
}

/// One person as the records of all their linked ids describe them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    /// Every id reached, sorted.
    pub ids: Vec<String>,
    /// The merged facts (see the module's rules).
    pub facts: ConversationFacts,
    /// The latest consent change, Unix seconds.
    pub consent_at: Option<i64>,
    /// A profile name from any record.
    pub profile_name: Option<String>,
    /// A username from any record.
    pub username: Option<String>,
    /// Whether any record exists.
    pub known: bool,
}

impl Person {
    /// The id per-person counters are kept under (pair-rate back-off): the first BSUID, else the
    /// first id, so that a phone and a BSUID of one person share one counter.
    #[must_use]
    pub fn key<'a>(&'a self, fallback: &'a str) -> &'a str {
        self.ids
            .iter()
            .find(|id| id_kind(id) == Some(IdKind::Bsuid))
            .or_else(|| self.ids.first())
            .map_or(fallback, String::as_str)
    }

    /// The person's phone number, when one is known.
    #[must_use]
    pub fn phone(&self) -> Option<&str> {
        self.ids.iter().find(|id| id_kind(id) == Some(IdKind::Phone)).map(String::as_str)
    }
}

/// Merges the records of one person's ids (see the module's rules); `requested` is the id asked for.
#[must_use]
pub fn merge(requested: &str, records: &[ConversationRecord]) -> Person {
    let mut ids: BTreeSet<String> = records.iter().map(|r| r.id.clone()).collect();
    ids.insert(normalize_id(requested).to_owned());
    let latest = |f: fn(&ConversationRecord) -> Option<i64>| records.iter().filter_map(f).max();
    // Consent: the latest change; at equal times (or none) an opt-out.
    let timed = records.iter().filter_map(|r| r.consent_at.map(|at| (at, r.marketing_opt_out))).max();
    let untimed_opt_out = records.iter().any(|r| r.consent_at.is_none() && r.marketing_opt_out);
    let marketing_opt_out = untimed_opt_out || timed.is_some_and(|(_, out)| out);
    Person {
        ids: ids.into_iter().collect(),
        facts: ConversationFacts {
            last_inbound_at: latest(|r| r.last_inbound_at),
            window_closed_at: latest(|r| r.window_closed_at),
            marketing_opt_out,
            free_entry_point_until: latest(|r| r.free_entry_point_until),
        },
        consent_at: timed.map(|(at, _)| at),
        profile_name: records.iter().find_map(|r| r.profile_name.clone()),
        username: records.iter().find_map(|r| r.username.clone()),
        known: !records.is_empty(),
    }
}

/// Resolves `id` to the person it belongs to: its record, the records it links to, and theirs, up to
/// [`MAX_IDS`]; then [`merge`].
pub async fn resolve<C: crate::ports::ConversationStore>(
    store: &C,
    phone_number_id: &str,
    id: &str,
) -> Result<Person, crate::ports::StoreError> {
    let start = normalize_id(id).to_owned();
    let mut seen: BTreeSet<String> = BTreeSet::from([start.clone()]);
    let mut frontier = vec![start];
    let mut records = Vec::new();
    while !frontier.is_empty() {
        let found = store.records(phone_number_id, &frontier).await?;
        frontier.clear();
        for record in found {
            for link in &record.links {
                if seen.len() < MAX_IDS && seen.insert(link.clone()) {
                    frontier.push(link.clone());
                }
            }
            records.push(record);
        }
    }
    Ok(merge(id, &records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> ConversationRecord {
        ConversationRecord { id: id.into(), ..Default::default() }
    }

    #[test]
    fn id_kinds() {
        let table = [
            ("16505551234", Some(IdKind::Phone)),
            ("+16505551234", Some(IdKind::Phone)),
            ("US.13491208655302741918", Some(IdKind::Bsuid)),
            ("US.ENT.11815799212886844830", Some(IdKind::ParentBsuid)),
            ("BR.abcDEF123", Some(IdKind::Bsuid)),
            ("us.1", None),
            ("US.", None),
            ("US.12-3", None),
            ("120363000000000000@g.us", None),
            ("", None),
        ];
        for (id, kind) in table {
            assert_eq!(id_kind(id), kind, "{id}");
        }
        assert_eq!(normalize_id("+1650"), "+1650", "too short for a phone: kept as given");
        assert_eq!(normalize_id("+16505551234"), "16505551234");
    }

    #[test]
    fn merging_two_records_of_one_person() {
        // (phone record, BSUID record) → (window until, opted out)
        /// (phone record, BSUID record, last message, last 131047, opted out)
        type Case = (ConversationRecord, ConversationRecord, Option<i64>, Option<i64>, bool);
        let cases: [Case; 6] = [
            // A reply recorded under each id: the later one counts.
            (
                ConversationRecord { last_inbound_at: Some(100), ..record("16505551234") },
                ConversationRecord { last_inbound_at: Some(200), ..record("US.1") },
                Some(200),
                None,
                false,
            ),
            // 131047 under the phone before the user wrote under the BSUID: the window is open.
            (
                ConversationRecord { window_closed_at: Some(50), ..record("16505551234") },
                ConversationRecord { last_inbound_at: Some(100), ..record("US.1") },
                Some(100),
                Some(50),
                false,
            ),
            // STOP under the BSUID, nothing under the phone: opted out.
            (
                record("16505551234"),
                ConversationRecord { marketing_opt_out: true, consent_at: Some(10), ..record("US.1") },
                None,
                None,
                true,
            ),
            // STOP at 10 under one id, START at 20 under the other: time order, opted in.
            (
                ConversationRecord { marketing_opt_out: false, consent_at: Some(20), ..record("16505551234") },
                ConversationRecord { marketing_opt_out: true, consent_at: Some(10), ..record("US.1") },
                None,
                None,
                false,
            ),
            // START at 10, STOP at 20: opted out.
            (
                ConversationRecord { marketing_opt_out: false, consent_at: Some(10), ..record("16505551234") },
                ConversationRecord { marketing_opt_out: true, consent_at: Some(20), ..record("US.1") },
                None,
                None,
                true,
            ),
            // START and STOP at the same second: the opt-out is kept.
            (
                ConversationRecord { marketing_opt_out: false, consent_at: Some(10), ..record("16505551234") },
                ConversationRecord { marketing_opt_out: true, consent_at: Some(10), ..record("US.1") },
                None,
                None,
                true,
            ),
        ];
        for (i, (a, b, last, closed, out)) in cases.into_iter().enumerate() {
            for records in [vec![a.clone(), b.clone()], vec![b.clone(), a.clone()]] {
                let person = merge("16505551234", &records);
                assert_eq!(person.facts.last_inbound_at, last, "case {i}");
                assert_eq!(person.facts.window_closed_at, closed, "case {i}");
                assert_eq!(person.facts.marketing_opt_out, out, "case {i}");
                assert_eq!(person.ids, ["16505551234", "US.1"], "case {i}");
                assert_eq!(person.key("x"), "US.1", "case {i}");
                assert_eq!(person.phone(), Some("16505551234"), "case {i}");
            }
        }
        let nobody = merge("+1650555", &[]);
        assert!(!nobody.known);
        assert_eq!(nobody.ids, ["1650555"]);
        assert_eq!(nobody.key("x"), "1650555");
    }

    #[test]
    fn what_a_payload_may_link() {
        let mut ids = Ids::default();
        ids.add(Some("16505551234"));
        ids.add(Some("US.1"));
        let linked = |id: &str, other: &str| ConversationRecord { links: vec![other.into()], ..record(id) };
        assert_eq!(linkable(&ids, &[], 100), Some(vec!["16505551234".into(), "US.1".into()]), "new ids");
        assert_eq!(linkable(&ids, &[linked("16505551234", "US.1"), linked("US.1", "16505551234")], 100), None, "known");
        assert!(linkable(&ids, &[linked("16505551234", "US.1")], 100).is_some(), "one side missing");
        let retired = ConversationRecord { retired_at: Some(200), ..record("16505551234") };
        assert_eq!(linkable(&ids, std::slice::from_ref(&retired), 150), None, "a payload from before the change");
        assert!(linkable(&ids, &[retired], 250).is_some(), "after the change the number may be someone's again");
    }

    #[test]
    fn identity_changes() {
        let message: Message = serde_json::from_value(serde_json::json!({
            "from": "16505551234", "id": "wamid.1", "timestamp": "1739321024", "type": "system",
            "system": {"body": "User changed", "wa_id": "12195555358", "user_id": "US.NEW", "parent_user_id": "US.ENT.NEW",
                       "previous_user_id": "US.OLD", "previous_parent_user_id": "US.ENT.OLD", "type": "user_changed_number"}}))
        .unwrap();
        let change = identity_change(&message).unwrap();
        assert!(change.number_changed);
        assert_eq!(change.now.ids(), ["12195555358", "US.ENT.NEW", "US.ENT.OLD", "US.NEW", "US.OLD"]);
        assert_eq!(change.retired_phone.as_deref(), Some("16505551234"));
        assert_eq!(change.user_id.as_deref(), Some("US.NEW"));
        assert!(!message_ids(&message, None).links_anything(), "the old phone is not linked to the new ids");

        let message: Message = serde_json::from_value(serde_json::json!({
            "from": "16505551234", "id": "wamid.2", "type": "system",
            "system": {"user_id": "US.NEW", "previous_user_id": "US.OLD", "type": "user_changed_user_id"}}))
        .unwrap();
        let change = identity_change(&message).unwrap();
        assert!(!change.number_changed);
        assert_eq!(change.now.ids(), ["16505551234", "US.NEW", "US.OLD"]);
        assert_eq!(change.retired_phone, None);

        let other: Message = serde_json::from_value(serde_json::json!({
            "from": "1650555", "id": "w", "type": "system", "system": {"type": "customer_identity_changed"}}))
        .unwrap();
        assert!(identity_change(&other).is_none());
    }

    #[test]
    fn ids_of_messages_statuses_and_send_responses() {
        let message: Message = serde_json::from_value(serde_json::json!({
            "from_user_id": "US.1", "from_parent_user_id": "US.ENT.9", "id": "w", "type": "text", "text": {"body": "hi"}}))
        .unwrap();
        let contact = serde_json::json!({"profile": {"name": "S", "username": "@s"}, "user_id": "US.1", "parent_user_id": "US.ENT.9"});
        assert_eq!(message_ids(&message, Some(&contact)).ids(), ["US.1", "US.ENT.9"]);

        for parent_key in ["parent_recipient_user_id", "recipient_parent_user_id", "parent_user_id"] {
            let status: Status = serde_json::from_value(serde_json::json!({
                "id": "w", "status": "delivered", "recipient_id": "16505551234", "recipient_user_id": "US.1", parent_key: "US.ENT.9"}))
            .unwrap();
            assert_eq!(status_parent_id(&status), Some("US.ENT.9"), "{parent_key}");
            assert_eq!(status_ids(&status, None).ids(), ["16505551234", "US.1", "US.ENT.9"], "{parent_key}");
        }
        let group: Status = serde_json::from_value(serde_json::json!({
            "id": "w", "status": "sent", "recipient_id": "120363000000000000@g.us"}))
        .unwrap();
        assert!(status_ids(&group, None).ids().is_empty(), "a group is not a person");

        let response = serde_json::json!({"input": "+16505551234", "wa_id": "16505551234", "user_id": "US.1"});
        assert_eq!(send_response_ids(&response).ids(), ["16505551234", "US.1"]);
    }
}
