//! The messaging limit and throughput upgrades in SQLite, with the DynamoDB adapter's rules
//! ([`wa_infra::limits`]): a user is counted and the window's bucket grown in one transaction,
//! only while the user was not reached in the window and the bucket is below its cap with its
//! neighbours unchanged.

use rusqlite::{OptionalExtension, params};
use wa_core::limit::{Count, Counted, Tier, Window};
use wa_core::ports::{LimitFacts, LimitStore, StoreError};

use crate::state::LocalState;
use crate::{Cached, db_error};

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl LimitStore for LocalState {
    async fn limit_facts(&self, numbers: &[&str], portfolios: &[&str]) -> Result<LimitFacts, StoreError> {
        let conn = self.db.lock();
        let mut facts = LimitFacts::default();
        for phone in numbers {
            let rate: Option<i64> = conn
                .row("SELECT rate FROM number_rates WHERE phone = ?1", params![phone], |r| r.get(0))
                .optional()
                .map_err(|e| db_error(&e))?;
            if let Some(rate) = rate.and_then(|r| u32::try_from(r).ok()) {
                facts.rates.insert((*phone).to_owned(), rate);
            }
        }
        for portfolio in portfolios {
            let tier: Option<i64> = conn
                .row("SELECT tier FROM limit_tiers WHERE portfolio = ?1", params![portfolio], |r| r.get(0))
                .optional()
                .map_err(|e| db_error(&e))?;
            let mut statement = conn
                .prepare_cached("SELECT hour, n FROM limit_buckets WHERE portfolio = ?1")
                .map_err(|e| db_error(&e))?;
            let buckets = statement
                .query_map(params![portfolio], |r| Ok((unsigned(r.get(0)?), unsigned(r.get(1)?))))
                .map_err(|e| db_error(&e))?
                .collect::<Result<_, _>>()
                .map_err(|e| db_error(&e))?;
            let window = Window { tier: tier.and_then(Tier::from_stored), buckets };
            facts.windows.insert((*portfolio).to_owned(), window);
        }
        Ok(facts)
    }

    async fn count_user(&self, portfolio: &str, user: &str, count: &Count) -> Result<Counted, StoreError> {
        if count.cap == 0 {
            return Ok(Counted::Full);
        }
        let user = user.trim_start_matches('+');
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(|e| db_error(&e))?;
        let reached: Option<i64> = tx
            .row("SELECT at FROM reached WHERE portfolio = ?1 AND user = ?2", params![portfolio, user], |r| r.get(0))
            .optional()
            .map_err(|e| db_error(&e))?;
        if reached.is_some_and(|at| unsigned(at) >= count.user_cutoff_s) {
            return Ok(Counted::Already);
        }
        let bucket = |hour: u64| -> Result<u64, StoreError> {
            tx.row(
                "SELECT n FROM limit_buckets WHERE portfolio = ?1 AND hour = ?2",
                params![portfolio, int(hour)],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|n| n.map_or(0, unsigned))
            .map_err(|e| db_error(&e))
        };
        if bucket(count.hour)? >= count.cap {
            return Ok(Counted::Full);
        }
        for (hour, seen) in count.neighbours {
            if bucket(hour)? != seen {
                return Ok(Counted::Full);
            }
        }
        tx.exec(
            "INSERT INTO limit_buckets(portfolio, hour, n) VALUES (?1, ?2, 1)
             ON CONFLICT(portfolio, hour) DO UPDATE SET n = n + 1",
            params![portfolio, int(count.hour)],
        )
        .map_err(|e| db_error(&e))?;
        for hour in &count.expired {
            tx.exec("DELETE FROM limit_buckets WHERE portfolio = ?1 AND hour = ?2", params![portfolio, int(*hour)])
                .map_err(|e| db_error(&e))?;
        }
        tx.exec(
            "INSERT OR REPLACE INTO reached(portfolio, user, at) VALUES (?1, ?2, ?3)",
            params![portfolio, user, int(count.at_s)],
        )
        .map_err(|e| db_error(&e))?;
        // Users reached before the window began are forgotten (DynamoDB's TTL does this there).
        tx.exec(
            "DELETE FROM reached WHERE portfolio = ?1 AND at < ?2",
            params![portfolio, int(count.user_cutoff_s.saturating_sub(wa_core::limit::WINDOW_S))],
        )
        .map_err(|e| db_error(&e))?;
        tx.commit().map_err(|e| db_error(&e))?;
        Ok(Counted::New)
    }

    async fn reached_at(&self, portfolio: &str, user: &str) -> Result<Option<u64>, StoreError> {
        self.db
            .lock()
            .row(
                "SELECT at FROM reached WHERE portfolio = ?1 AND user = ?2",
                params![portfolio, user.trim_start_matches('+')],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|at| at.map(unsigned))
            .map_err(|e| db_error(&e))
    }

    async fn record_tier(&self, portfolio: &str, tier: Tier, at_s: u64) -> Result<(), StoreError> {
        let value = tier.stored();
        self.db
            .lock()
            .exec(
                "INSERT INTO limit_tiers(portfolio, tier, tier_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(portfolio) DO UPDATE SET tier = ?2, tier_at = ?3 WHERE tier_at <= ?3",
                params![portfolio, value, int(at_s)],
            )
            .map(|_| ())
            .map_err(|e| db_error(&e))
    }

    async fn record_number(
        &self,
        display_phone_number: &str,
        phone_number_id: Option<&str>,
        upgraded_rate: Option<u32>,
    ) -> Result<(), StoreError> {
        let display = wa_core::limit::display_key(display_phone_number);
        let mut conn = self.db.lock();
        let tx = conn.transaction().map_err(|e| db_error(&e))?;
        tx.exec(
            "INSERT INTO displays(display, phone, rate) VALUES (?1, ?2, ?3)
             ON CONFLICT(display) DO UPDATE SET phone = coalesce(?2, phone), rate = coalesce(?3, rate)",
            params![display, phone_number_id, upgraded_rate],
        )
        .map_err(|e| db_error(&e))?;
        let (phone, rate): (Option<String>, Option<i64>) = tx
            .row("SELECT phone, rate FROM displays WHERE display = ?1", params![display], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(|e| db_error(&e))?;
        if let (Some(phone), Some(rate)) = (phone, rate) {
            tx.exec("INSERT OR REPLACE INTO number_rates(phone, rate) VALUES (?1, ?2)", params![phone, rate])
                .map_err(|e| db_error(&e))?;
        }
        tx.commit().map_err(|e| db_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_core::limit::{BUCKET_S, Buckets, count};

    #[tokio::test]
    async fn users_are_counted_once_and_never_past_the_limit() {
        let state = LocalState::new(&crate::LocalDb::memory().unwrap());
        let now = 1000 * BUCKET_S;
        let facts = state.limit_facts(&[], &["p"]).await.unwrap();
        assert_eq!(facts.windows["p"], Window::default());
        let mut outcomes = Vec::new();
        for user in ["a", "b", "a", "c"] {
            let buckets = state.limit_facts(&[], &["p"]).await.unwrap().windows["p"].buckets.clone();
            outcomes.push(state.count_user("p", user, &count(2, &buckets, now)).await.unwrap());
        }
        assert_eq!(outcomes, vec![Counted::New, Counted::New, Counted::Already, Counted::Full]);
        // A stale read: the neighbour changed since.
        let stale = count(5, &Buckets::new(), now);
        let buckets = state.limit_facts(&[], &["p"]).await.unwrap().windows["p"].buckets.clone();
        assert_eq!(state.count_user("p", "z", &count(5, &buckets, now + BUCKET_S)).await.unwrap(), Counted::New);
        assert_eq!(state.count_user("p", "y", &stale).await.unwrap(), Counted::Full);
        assert_eq!(state.reached_at("p", "+a").await.unwrap(), Some(now));
        // A day later the window is empty again; the old bucket goes with the next count.
        let later = now + 25 * BUCKET_S;
        let buckets = state.limit_facts(&[], &["p"]).await.unwrap().windows["p"].buckets.clone();
        assert_eq!(state.count_user("p", "a", &count(2, &buckets, later)).await.unwrap(), Counted::New);
        let buckets = state.limit_facts(&[], &["p"]).await.unwrap().windows["p"].buckets.clone();
        assert_eq!(buckets.into_iter().collect::<Vec<_>>(), vec![(1001, 1), (1025, 1)]);
    }

    #[tokio::test]
    async fn tiers_and_upgrades_are_learned_in_any_order() {
        let state = LocalState::new(&crate::LocalDb::memory().unwrap());
        state.record_tier("p", Tier::Limited(250), 10).await.unwrap();
        state.record_tier("p", Tier::Limited(2000), 5).await.unwrap();
        assert_eq!(state.limit_facts(&[], &["p"]).await.unwrap().windows["p"].tier, Some(Tier::Limited(250)));
        state.record_tier("p", Tier::Unlimited, 11).await.unwrap();
        assert_eq!(state.limit_facts(&[], &["p"]).await.unwrap().windows["p"].tier, Some(Tier::Unlimited));
        // The upgrade first, then the number seen in a webhook's metadata.
        state.record_number("+1 555 078 3881", None, Some(1000)).await.unwrap();
        assert!(state.limit_facts(&["N1"], &[]).await.unwrap().rates.is_empty());
        state.record_number("15550783881", Some("N1"), None).await.unwrap();
        assert_eq!(state.limit_facts(&["N1"], &[]).await.unwrap().rates["N1"], 1000);
        // The other order.
        state.record_number("15550000002", Some("N2"), None).await.unwrap();
        state.record_number("15550000002", None, Some(1000)).await.unwrap();
        assert_eq!(state.limit_facts(&["N2"], &[]).await.unwrap().rates["N2"], 1000);
    }
}
