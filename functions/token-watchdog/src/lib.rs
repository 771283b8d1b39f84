//! The daily token watchdog. For each app secret: read its current tokens, ask Meta's
//! `debug_token` about each, and
//! - start a rotation when a token expires in fewer than 14 days (a 60-day token on a 60-day
//!   schedule has no margin, and an expired token cannot be exchanged);
//! - count an invalid token (expired, revoked, wrong app, missing scopes) for the alarm: only an
//!   operator can store a new one.
//!
//! Metrics (EMF): `TokenDaysLeft` (the fewest days left), `TokenInvalid`, `RotationStarted`,
//! `WatchdogFailures` (a secret or Meta could not be read, or the rotation could not start).

use std::collections::BTreeSet;

use wa_core::ports::{MetaAdmin, SecretVault};
use wa_core::rotation::{Watch, watch};
use wa_core::secrets::{AppSecrets, SecretStage};
use wa_infra::telemetry;

/// The function name used in metrics.
pub const FUNCTION: &str = "token-watchdog";

/// What the watchdog found for one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The secret.
    pub secret_id: String,
    /// One verdict per distinct token (`access_token` or the phone_number_id it serves).
    pub verdicts: Vec<(String, Watch)>,
    /// A rotation was started.
    pub rotation_started: bool,
    /// What could not be done.
    pub failure: Option<String>,
}

/// The watchdog function.
pub struct Watchdog<V, M> {
    /// Secrets Manager.
    pub vault: V,
    /// Meta's `debug_token`.
    pub meta: M,
    /// The app secrets to watch.
    pub secret_ids: Vec<String>,
}

impl<V: SecretVault, M: MetaAdmin> Watchdog<V, M> {
    /// Checks every secret.
    pub async fn run(&self, now_s: u64) -> Vec<Report> {
        let mut reports = Vec::with_capacity(self.secret_ids.len());
        for secret_id in &self.secret_ids {
            let report = self.check(secret_id, now_s).await;
            let days_left = report
                .verdicts
                .iter()
                .filter_map(|(_, w)| match w {
                    Watch::Healthy { days_left } => *days_left,
                    Watch::RotateEarly { days_left } => Some(*days_left),
                    Watch::Invalid(_) => Some(0),
                })
                .min();
            let invalid = report.verdicts.iter().filter(|(_, w)| matches!(w, Watch::Invalid(_))).count();
            let mut metrics = vec![
                ("TokenInvalid", invalid as f64),
                ("RotationStarted", f64::from(u8::from(report.rotation_started))),
                ("WatchdogFailures", f64::from(u8::from(report.failure.is_some()))),
            ];
            if let Some(days) = days_left {
                metrics.push(("TokenDaysLeft", days as f64));
            }
            telemetry::emit(FUNCTION, None, &metrics);
            for (name, verdict) in &report.verdicts {
                match verdict {
                    Watch::Invalid(reason) => {
                        tracing::error!(secret = %secret_id, token = %name, %reason, "token_invalid");
                    }
                    other => tracing::info!(secret = %secret_id, token = %name, verdict = ?other, "token_checked"),
                }
            }
            if let Some(failure) = &report.failure {
                tracing::error!(secret = %secret_id, %failure, "watchdog_failure");
            }
            reports.push(report);
        }
        reports
    }

    async fn check(&self, secret_id: &str, now_s: u64) -> Report {
        let mut report =
            Report { secret_id: secret_id.to_owned(), verdicts: Vec::new(), rotation_started: false, failure: None };
        let secrets = match self.vault.value(secret_id, None, SecretStage::Current).await {
            Ok(Some(text)) => match AppSecrets::from_json(&text) {
                Ok(secrets) => secrets,
                Err(reason) => {
                    report.failure = Some(reason);
                    return report;
                }
            },
            Ok(None) => {
                report.failure = Some("the secret has no AWSCURRENT value".into());
                return report;
            }
            Err(error) => {
                report.failure = Some(error.to_string());
                return report;
            }
        };
        let mut seen = BTreeSet::new();
        let tokens = std::iter::once(("access_token".to_owned(), &secrets.access_token))
            .chain(secrets.phone_number_tokens.iter().map(|(id, t)| (format!("phone_number_tokens.{id}"), t)));
        for (name, token) in tokens {
            if !seen.insert(token.clone()) {
                continue;
            }
            match self.meta.debug_token(&secrets, token).await {
                Ok(debug) => report.verdicts.push((name, watch(&debug, &secrets.app_id, now_s))),
                Err(error) => {
                    report.failure = Some(format!("debug_token for {name}: {error}"));
                    return report;
                }
            }
        }
        let invalid = report.verdicts.iter().any(|(_, w)| matches!(w, Watch::Invalid(_)));
        let early = report.verdicts.iter().any(|(_, w)| matches!(w, Watch::RotateEarly { .. }));
        if early && !invalid {
            match self.vault.start_rotation(secret_id).await {
                Ok(()) => report.rotation_started = true,
                Err(error) => report.failure = Some(format!("cannot start the rotation: {error}")),
            }
        }
        report
    }
}
