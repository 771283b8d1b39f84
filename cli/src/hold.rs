//! `wa hold`: business numbers held after an account-level error (see [`wa_core::hold`]): list
//! them, or clear one once the cause is fixed (a payment method added, a block lifted), so that its
//! queued requests go out at their next delivery instead of after the cool-down.

use std::fmt::Write as _;

use wa_core::conversation::utc_datetime;
use wa_core::hold::Hold;
use wa_core::ports::HoldStore;

/// The report of `wa hold list`.
#[must_use]
pub fn describe(holds: &[(String, Hold)], now_ms: u64) -> String {
    let mut out = String::new();
    if holds.is_empty() {
        out.push_str("No business number is held.\n");
        return out;
    }
    for (number, hold) in holds {
        let at = |ms: u64| utc_datetime(i64::try_from(ms / 1000).unwrap_or(i64::MAX));
        let state = if hold.until_ms > now_ms {
            format!("cool-down until {}", at(hold.until_ms))
        } else {
            "cool-down over: the next batch probes with one request".to_owned()
        };
        let _ = writeln!(
            out,
            "{number}: held since {} after code {} ({}), {} strike(s); {state}",
            at(hold.since_ms),
            hold.code,
            wa_core::graph_error::meaning(hold.code),
            hold.strikes,
        );
    }
    out
}

/// `wa hold clear`: removes the number's hold; says whether there was one.
pub async fn clear<S: HoldStore>(store: &S, phone_number_id: &str) -> Result<String, String> {
    let held = store.hold(phone_number_id).await.map_err(|e| e.to_string())?;
    store.clear_hold(phone_number_id).await.map_err(|e| e.to_string())?;
    Ok(match held {
        Some(hold) => format!(
            "{phone_number_id}: hold cleared (code {}, {} strike(s)); its queued requests go out at their next delivery\n",
            hold.code, hold.strikes
        ),
        None => format!("{phone_number_id}: was not held\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_the_code_and_what_comes_next() {
        let hold = Hold { code: 131_042, since_ms: 0, until_ms: 600_000, strikes: 2, probe_until_ms: None };
        let report = describe(&[("106540352242922".into(), hold.clone())], 1_000);
        assert!(report.contains("code 131042 (payment problem"), "{report}");
        assert!(report.contains("cool-down until 1970-01-01T00:10:00Z"), "{report}");
        assert!(describe(&[("1".into(), hold)], 700_000).contains("probes"));
        assert!(describe(&[], 0).contains("No business number"));
    }
}
