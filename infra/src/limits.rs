//! Meta's messaging limit and throughput upgrades in the state table ([`wa_core::limit`]): the
//! items `LIMIT#<portfolio>`, `REACH#<portfolio>#<user>`, `DISPLAY#<display number>` and
//! `NUMBER#<phone_number_id>` (see [`crate::dynamo`] for the table).
//!
//! A new user is counted by two conditional writes, bucket first: the window's bucket (only while
//! below its cap, the neighbouring buckets unchanged), then the user's record (only if the user
//! was not reached in the window). Concurrent senders never go past the limit (the bucket's
//! condition); a user a concurrent sender counted first fails the second write, and this one's
//! increment is taken back, so nobody is counted twice. A crash or an error between the two
//! leaves the bucket one higher than the users it counts: the limit is then met one user early
//! for the rest of that hour, never passed. Two single writes cost 2 write units where a
//! transaction of the same two costs 4 (a transaction bills each item twice).

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use wa_core::limit::{Count, Counted, Tier, Window};
use wa_core::ports::{LimitFacts, LimitStore, StoreError};

use crate::dynamo::{StateTable, key, n, number, s, store_error};

/// How long a user's record outlives the window (DynamoDB's TTL deletes it later).
const REACH_TTL_S: u64 = 2 * wa_core::limit::WINDOW_S;

fn limit_pk(portfolio: &str) -> String {
    format!("LIMIT#{portfolio}")
}

fn reach_pk(portfolio: &str, user: &str) -> String {
    format!("REACH#{portfolio}#{}", user.trim_start_matches('+'))
}

/// A `LIMIT#` item as a window.
fn window_from(item: &HashMap<String, AttributeValue>) -> Window {
    let tier =
        item.get("tier").and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok()).and_then(Tier::from_stored);
    let buckets = item
        .iter()
        .filter_map(|(name, value)| {
            let hour = name.strip_prefix('h')?.parse::<u64>().ok()?;
            Some((hour, value.as_n().ok()?.parse::<u64>().ok()?))
        })
        .collect();
    Window { tier, buckets }
}

/// The window's conditional update of `count`, on `update`.
fn window_update(
    update: UpdateItemFluentBuilder,
    table: &str,
    portfolio: &str,
    count: &Count,
) -> UpdateItemFluentBuilder {
    let mut update = update
        .table_name(table)
        .set_key(Some(key(limit_pk(portfolio), "LIMIT")))
        .expression_attribute_names("#cur", format!("h{}", count.hour))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":cap", n(count.cap));
    let mut condition = vec!["(attribute_not_exists(#cur) OR #cur < :cap)".to_owned()];
    for (i, (hour, seen)) in count.neighbours.iter().enumerate() {
        update = update
            .expression_attribute_names(format!("#n{i}"), format!("h{hour}"))
            .expression_attribute_values(format!(":n{i}"), n(*seen));
        condition.push(if *seen == 0 {
            format!("(attribute_not_exists(#n{i}) OR #n{i} = :n{i})")
        } else {
            format!("#n{i} = :n{i}")
        });
    }
    let mut expression = "ADD #cur :one".to_owned();
    if !count.expired.is_empty() {
        let names: Vec<String> = (0..count.expired.len()).map(|i| format!("#x{i}")).collect();
        for (name, hour) in names.iter().zip(&count.expired) {
            update = update.expression_attribute_names(name, format!("h{hour}"));
        }
        expression.push_str(&format!(" REMOVE {}", names.join(", ")));
    }
    update.update_expression(expression).condition_expression(condition.join(" AND "))
}

impl LimitStore for StateTable {
    async fn limit_facts(&self, numbers: &[&str], portfolios: &[&str]) -> Result<LimitFacts, StoreError> {
        let mut keys: Vec<_> = numbers.iter().map(|p| key(format!("NUMBER#{p}"), "NUMBER")).collect();
        keys.extend(portfolios.iter().map(|p| key(limit_pk(p), "LIMIT")));
        keys.sort_by(|a, b| a.get("pk").and_then(|v| v.as_s().ok()).cmp(&b.get("pk").and_then(|v| v.as_s().ok())));
        keys.dedup();
        let mut facts = LimitFacts::default();
        for portfolio in portfolios {
            facts.windows.insert((*portfolio).to_owned(), Window::default());
        }
        for item in self.batch_get(keys).await? {
            let Some(pk) = item.get("pk").and_then(|v| v.as_s().ok()) else { continue };
            if let Some(phone) = pk.strip_prefix("NUMBER#") {
                if let Some(rate) = number(&item, "rate").and_then(|r| u32::try_from(r).ok()) {
                    facts.rates.insert(phone.to_owned(), rate);
                }
            } else if let Some(portfolio) = pk.strip_prefix("LIMIT#") {
                facts.windows.insert(portfolio.to_owned(), window_from(&item));
            }
        }
        Ok(facts)
    }

    async fn count_user(&self, portfolio: &str, user: &str, count: &Count) -> Result<Counted, StoreError> {
        if count.cap == 0 {
            return Ok(Counted::Full);
        }
        let mut record = key(reach_pk(portfolio, user), "REACH");
        record.insert("at".into(), n(count.at_s));
        record.insert("expires_at".into(), n(count.at_s + REACH_TTL_S));
        let counted = crate::dynamo::conditional(
            window_update(self.client.update_item(), &self.table, portfolio, count).send().await,
        )?;
        if !counted {
            // The window's condition: full, or changed since it was read (read again).
            return Ok(Counted::Full);
        }
        let recorded = crate::dynamo::conditional(
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(record))
                .condition_expression("attribute_not_exists(pk) OR #at < :cutoff")
                .expression_attribute_names("#at", "at")
                .expression_attribute_values(":cutoff", n(count.user_cutoff_s))
                .send()
                .await,
        )?;
        if recorded {
            return Ok(Counted::New);
        }
        // Another sender counted this user first: take this increment back.
        let undone = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(limit_pk(portfolio), "LIMIT")))
            .update_expression("ADD #cur :minus")
            .condition_expression("#cur > :zero")
            .expression_attribute_names("#cur", format!("h{}", count.hour))
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        if let Err(error) = crate::dynamo::conditional(undone) {
            tracing::warn!(%error, "cannot take back a repeat user's count: the window counts one user more");
        }
        Ok(Counted::Already)
    }

    async fn reached_at(&self, portfolio: &str, user: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.get(reach_pk(portfolio, user), "REACH").await?.and_then(|item| number(&item, "at")))
    }

    async fn record_tier(&self, portfolio: &str, tier: Tier, at_s: u64) -> Result<(), StoreError> {
        // A redelivered older announcement must not undo a newer one.
        let written = crate::dynamo::conditional(
            self.client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(limit_pk(portfolio), "LIMIT")))
                .update_expression("SET tier = :tier, tier_at = :at")
                .condition_expression("attribute_not_exists(tier_at) OR tier_at <= :at")
                .expression_attribute_values(":tier", n(tier.stored()))
                .expression_attribute_values(":at", n(at_s))
                .send()
                .await,
        )?;
        if !written {
            tracing::info!("an older tier announcement was not applied");
        }
        Ok(())
    }

    async fn record_number(
        &self,
        display_phone_number: &str,
        phone_number_id: Option<&str>,
        upgraded_rate: Option<u32>,
    ) -> Result<(), StoreError> {
        let display = wa_core::limit::display_key(display_phone_number);
        let mut sets = Vec::new();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("DISPLAY#{display}"), "DISPLAY")));
        if let Some(id) = phone_number_id {
            sets.push("phone_number_id = :id");
            update = update.expression_attribute_values(":id", s(id));
        }
        if let Some(rate) = upgraded_rate {
            sets.push("rate = :rate");
            update = update.expression_attribute_values(":rate", n(rate));
        }
        if sets.is_empty() {
            return Ok(());
        }
        let out = update
            .update_expression(format!("SET {}", sets.join(", ")))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        let item = out.attributes.unwrap_or_default();
        let (Some(id), Some(rate)) = (item.get("phone_number_id").and_then(|v| v.as_s().ok()), number(&item, "rate"))
        else {
            return Ok(());
        };
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("NUMBER#{id}"), "NUMBER")))
            .update_expression("SET rate = :rate, display = :display")
            .expression_attribute_values(":rate", n(rate))
            .expression_attribute_values(":display", s(display))
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_window_reads_back() {
        let item = HashMap::from([
            ("pk".to_owned(), s("LIMIT#default")),
            ("tier".to_owned(), n(250)),
            ("tier_at".to_owned(), n(5)),
            ("h1000".to_owned(), n(3)),
            ("h1001".to_owned(), n(4)),
        ]);
        let window = window_from(&item);
        assert_eq!(window.tier, Some(Tier::Limited(250)));
        assert_eq!(window.buckets.into_iter().collect::<Vec<_>>(), vec![(1000, 3), (1001, 4)]);
        let unlimited = HashMap::from([("tier".to_owned(), n(-1))]);
        assert_eq!(window_from(&unlimited).tier, Some(Tier::Unlimited));
    }
}
