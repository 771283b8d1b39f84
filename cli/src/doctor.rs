//! `wa doctor`: checks a real Meta setup, the usual reasons for "verified but no messages" and
//! "sends fail" first. Each check prints ✓ or ✗ with what to do; the exit code is 1 when any
//! check fails.
//!
//! 1. the access token: `debug_token` — valid, this app, the WhatsApp scopes, days left;
//! 2. the app's webhook subscription: `GET /{app_id}/subscriptions` — a `whatsapp_business_account`
//!    callback URL with the `messages` field;
//! 3. the WABA's subscribed apps: `GET /{waba_id}/subscribed_apps` — this app is listed (without
//!    it Meta verifies the webhook but never sends messages to it);
//! 4. the business number: `GET /{phone_number_id}` — `CONNECTED`, its quality rating and
//!    throughput level.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;
use wa_core::ports::MetaAdmin;
use wa_core::rotation::{ROTATE_EARLY_DAYS, Watch, watch};
use wa_core::secrets::AppSecrets;
use wa_infra::graph::GraphClient;

/// What to check.
pub struct DoctorArgs {
    /// The app credentials and token.
    pub secrets: AppSecrets,
    /// The WhatsApp Business Account.
    pub waba_id: String,
    /// The business number.
    pub phone_number_id: String,
    /// The Graph host (the simulator in tests).
    pub graph_base: String,
}

struct Report {
    text: String,
    failures: usize,
}

impl Report {
    fn ok(&mut self, line: &str) {
        let _ = writeln!(self.text, "✓ {line}");
    }

    fn fail(&mut self, line: &str, hint: &str) {
        self.failures += 1;
        let _ = writeln!(self.text, "✗ {line}\n    → {hint}");
    }
}

async fn get(http: &reqwest::Client, url: &str, token: &str) -> Result<Value, String> {
    let response = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| format!("unreachable: {}", wa_infra::aws::describe(&e.without_url())))?;
    if let Some(reason) = wa_infra::graph::refused_redirect(&response) {
        return Err(reason);
    }
    let status = response.status().as_u16();
    let body: Value = response.json().await.map_err(|e| format!("HTTP {status}, not JSON: {}", e.without_url()))?;
    if status == 200 {
        Ok(body)
    } else {
        Err(format!(
            "HTTP {status}, code {}: {}",
            body["error"]["code"],
            body["error"]["message"].as_str().unwrap_or("no message")
        ))
    }
}

/// Runs every check; returns the report and whether all passed.
pub async fn doctor(args: &DoctorArgs, now_s: u64) -> Result<(String, bool), String> {
    let graph = GraphClient::new(&args.graph_base, wa_infra::graph::DEFAULT_VERSION, Duration::from_secs(10))?;
    // Like the Graph client: a token goes only where it was addressed, and a redirect is reported.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let base = graph.version_base();
    let secrets = &args.secrets;
    let mut report = Report { text: String::new(), failures: 0 };

    match graph.debug_token(secrets, &secrets.access_token).await {
        Ok(debug) => match watch(&debug, &secrets.app_id, now_s) {
            Watch::Healthy { days_left: None } => report.ok("access token: valid, never expires, WhatsApp scopes"),
            Watch::Healthy { days_left: Some(days) } => {
                report.ok(&format!("access token: valid for {days} more days, WhatsApp scopes"));
            }
            Watch::RotateEarly { days_left } => report.fail(
                &format!("access token: expires in {days_left} days"),
                &format!(
                    "rotate now (aws secretsmanager rotate-secret); the watchdog does under {ROTATE_EARLY_DAYS} days"
                ),
            ),
            Watch::Invalid(reason) => report.fail(
                &format!("access token: {reason}"),
                "generate a system-user token with whatsapp_business_messaging and whatsapp_business_management",
            ),
        },
        Err(error) => report.fail(&format!("access token: debug_token failed: {error}"), "check app_id and app_secret"),
    }

    match get(
        &http,
        &format!("{base}/{}/subscriptions", secrets.app_id),
        &format!("{}|{}", secrets.app_id, secrets.app_secret),
    )
    .await
    {
        Ok(body) => {
            let subscription = body["data"]
                .as_array()
                .and_then(|items| items.iter().find(|s| s["object"] == "whatsapp_business_account"));
            match subscription {
                Some(s) => {
                    let fields: Vec<&str> = s["fields"]
                        .as_array()
                        .map(|f| f.iter().filter_map(|x| x["name"].as_str()).collect())
                        .unwrap_or_default();
                    if fields.contains(&"messages") {
                        report.ok(&format!(
                            "webhook: {} receives {}",
                            s["callback_url"].as_str().unwrap_or("?"),
                            fields.join(", ")
                        ));
                    } else {
                        report.fail(
                            "webhook: subscribed, but not to the messages field",
                            "subscribe to messages in the app dashboard (WhatsApp → Configuration)",
                        );
                    }
                }
                None => report.fail(
                    "webhook: the app has no whatsapp_business_account subscription",
                    "set the callback URL (stack output WebhookUrl) and verify token in the app dashboard",
                ),
            }
        }
        Err(error) => report
            .fail(&format!("webhook: cannot read the app's subscriptions: {error}"), "check app_id and app_secret"),
    }

    match get(&http, &format!("{base}/{}/subscribed_apps", args.waba_id), &secrets.access_token).await {
        Ok(body) => {
            let listed = body["data"].as_array().is_some_and(|apps| {
                apps.iter().any(|a| a["whatsapp_business_api_data"]["id"].as_str() == Some(secrets.app_id.as_str()))
            });
            if listed {
                report.ok(&format!("WABA {}: the app is subscribed to its webhooks", args.waba_id));
            } else {
                report.fail(
                    &format!(
                        "WABA {}: the app is not subscribed (webhooks verify, but no message ever arrives)",
                        args.waba_id
                    ),
                    &format!(
                        "curl -X POST \"{}/{}/subscribed_apps\" -H \"Authorization: Bearer <token>\"",
                        wa_infra::graph::DEFAULT_BASE.to_owned() + "/" + wa_infra::graph::DEFAULT_VERSION,
                        args.waba_id
                    ),
                );
            }
        }
        Err(error) => report.fail(
            &format!("WABA {}: cannot read subscribed_apps: {error}", args.waba_id),
            "check the WABA id and that the token can manage it",
        ),
    }

    let fields = "display_phone_number,verified_name,status,quality_rating,code_verification_status,throughput";
    match get(&http, &format!("{base}/{}?fields={fields}", args.phone_number_id), &secrets.access_token).await {
        Ok(body) => {
            let status = body["status"].as_str().unwrap_or("unknown");
            let level = body["throughput"]["level"].as_str().unwrap_or("unknown");
            let rate = match level {
                "HIGH" => "up to 1000 messages/s: set MESSAGES_PER_SECOND_BY_NUMBER",
                "STANDARD" => "80 messages/s: MESSAGES_PER_SECOND=80",
                _ => "unknown",
            };
            let line = format!(
                "number {} ({}): status {status}, quality {}, throughput {level} ({rate})",
                args.phone_number_id,
                body["verified_name"].as_str().unwrap_or("?"),
                body["quality_rating"].as_str().unwrap_or("unknown"),
            );
            if status == "CONNECTED" {
                report.ok(&line);
            } else {
                report.fail(
                    &line,
                    "register the number (POST /{phone_number_id}/register) or resolve its review in WhatsApp Manager",
                );
            }
        }
        Err(error) => report.fail(
            &format!("number {}: {error}", args.phone_number_id),
            "check the phone_number_id (WhatsApp Manager → Phone numbers)",
        ),
    }
    let all = report.failures == 0;
    let _ = writeln!(
        report.text,
        "{}",
        if all { "all checks passed".to_owned() } else { format!("{} check(s) failed", report.failures) }
    );
    Ok((report.text, all))
}
