//! The simulator's users as Meta knows them in 2026: every phone number has a business-scoped
//! user id (BSUID) per portfolio, shared in webhooks beside the phone; some users ("username
//! users") have their phone withheld, so webhooks name them by BSUID only; a user who changes
//! number gets a new BSUID and Meta posts a `system` message. These rules are the simulator's own
//! (from `reference/CLOUD_API_2026.md` §1), not the pipeline's.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

/// The BSUID Meta issues for `phone` in the simulated portfolio `waba_id`: `US.` and 20 digits,
/// stable for a (portfolio, phone) pair, different for another phone.
#[must_use]
pub fn bsuid_for(waba_id: &str, phone: &str) -> String {
    format!("US.{:020}", fnv(waba_id, phone) % 100_000_000_000_000_000_000)
}

/// The parent BSUID of `phone` (linked portfolios): `US.ENT.` and 20 digits.
#[must_use]
pub fn parent_bsuid_for(waba_id: &str, phone: &str) -> String {
    format!("US.ENT.{:020}", fnv(phone, waba_id) % 100_000_000_000_000_000_000)
}

/// FNV-1a over both strings, widened to 128 bits by hashing twice.
fn fnv(a: &str, b: &str) -> u128 {
    let hash = |seed: u64| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
        for byte in a.bytes().chain([0]).chain(b.bytes()) {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    };
    (u128::from(hash(0)) << 64) | u128::from(hash(0x9e37_79b9_7f4a_7c15))
}

/// Whether `id` has the shape of a BSUID (`CC.` then alphanumerics, optionally `ENT.`): the
/// simulator's own reading of Meta's format.
#[must_use]
pub fn looks_like_bsuid(id: &str) -> bool {
    let Some((country, rest)) = id.split_once('.') else { return false };
    let rest = rest.strip_prefix("ENT.").unwrap_or(rest);
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && !rest.is_empty()
        && rest.len() <= 128
        && rest.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Who the simulator's users are.
#[derive(Debug, Default)]
pub struct Users {
    /// Phones whose owners withhold them (webhooks carry the BSUID only).
    pub username_users: HashSet<String>,
    /// BSUID → phone, for every phone the simulator has seen.
    pub by_bsuid: HashMap<String, String>,
}

impl Users {
    /// The phone of a BSUID the simulator issued.
    #[must_use]
    pub fn phone_of(&self, bsuid: &str) -> Option<&str> {
        self.by_bsuid.get(bsuid).map(String::as_str)
    }

    /// Remembers `phone`'s BSUID and returns it.
    pub fn bsuid(&mut self, waba_id: &str, phone: &str) -> String {
        let bsuid = bsuid_for(waba_id, phone);
        self.by_bsuid.entry(bsuid.clone()).or_insert_with(|| phone.to_owned());
        bsuid
    }

    /// Whether webhooks may name `phone`.
    #[must_use]
    pub fn shares_phone(&self, phone: &str) -> bool {
        !self.username_users.contains(phone)
    }
}

/// `POST /_sim/identity_change`: a user changes number (`new_phone`) or only gets a new BSUID.
#[derive(Debug, Clone, Deserialize)]
pub struct IdentityChange {
    /// The business number the system message goes to.
    pub phone_number_id: String,
    /// The user's phone number before the change.
    pub phone: String,
    /// The new phone number; absent for `user_changed_user_id`.
    #[serde(default)]
    pub new_phone: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsuids_are_stable_per_phone_and_portfolio() {
        let a = bsuid_for("W", "16505551234");
        assert_eq!(a, bsuid_for("W", "16505551234"));
        assert_ne!(a, bsuid_for("W", "16505551235"));
        assert_ne!(a, bsuid_for("V", "16505551234"), "one BSUID per portfolio");
        assert!(looks_like_bsuid(&a), "{a}");
        assert_eq!(a.len(), 23);
        let parent = parent_bsuid_for("W", "16505551234");
        assert!(parent.starts_with("US.ENT.") && looks_like_bsuid(&parent), "{parent}");
        assert!(!looks_like_bsuid("16505551234") && !looks_like_bsuid("us.1") && !looks_like_bsuid("US.1-2"));
    }
}
