//! The token and subscription endpoints a rotation uses, as Meta answers them:
//!
//! - `GET /{version}/oauth/access_token?grant_type=fb_exchange_token&client_id&client_secret&fb_exchange_token`
//!   (`set_token_expires_in_60_days=true` for system-user tokens) mints a new 60-day token;
//! - `GET /{version}/debug_token?input_token=…` with an app access token (`app_id|app_secret`)
//!   describes a token (app, type, expiry, scopes, validity);
//! - `POST /{version}/{app_id}/subscriptions` (`object`, `callback_url`, `verify_token`, `fields`)
//!   performs the verification GET against `callback_url` first, as Meta does, and fails with
//!   code 2200 when the endpoint does not echo the challenge; `GET` lists the subscriptions.
//!
//! Parameters are read from the query string and from a form body alike.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{Shared, lock, meta_error, respond};

/// The scopes a WhatsApp system-user token carries.
pub const WHATSAPP_SCOPES: [&str; 2] = ["whatsapp_business_messaging", "whatsapp_business_management"];

/// Sixty days, in seconds: the life of an exchanged token.
pub const SIXTY_DAYS: u64 = 60 * 86_400;

/// What the simulator knows of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// The app that owns it.
    pub app_id: String,
    /// Expiry, Unix seconds; 0 never expires.
    pub expires_at: u64,
    /// Granted permissions.
    pub scopes: Vec<String>,
    /// False once revoked.
    pub is_valid: bool,
}

impl TokenInfo {
    /// A valid WhatsApp token of `app_id` expiring at `expires_at` (0: never).
    #[must_use]
    pub fn whatsapp(app_id: &str, expires_at: u64) -> Self {
        Self {
            app_id: app_id.to_owned(),
            expires_at,
            scopes: WHATSAPP_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
            is_valid: true,
        }
    }

    /// Valid now.
    #[must_use]
    pub fn usable(&self, now: u64) -> bool {
        self.is_valid && (self.expires_at == 0 || self.expires_at > now)
    }
}

/// A webhook subscription the simulator holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    /// The app.
    pub app_id: String,
    /// `whatsapp_business_account`.
    pub object: String,
    /// Where webhooks go.
    pub callback_url: String,
    /// The token of the last successful verification.
    pub verify_token: String,
    /// Subscribed fields.
    pub fields: Vec<String>,
}

/// An admin call the simulator answered (for tests: how many exchanges, debug calls, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminCall {
    /// `oauth`, `debug_token` or `subscriptions`.
    pub endpoint: &'static str,
    /// HTTP status answered.
    pub status: u16,
}

pub(crate) fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What the simulator knows of `token`: minted or registered tokens first, then the configured one.
pub(crate) fn token_info(shared: &Shared, token: &str) -> Option<TokenInfo> {
    if let Some(info) = lock(&shared.counters).tokens.get(token) {
        return Some(info.clone());
    }
    let config = lock(&shared.config);
    (token == config.access_token).then(|| TokenInfo::whatsapp(&config.app_id, config.access_token_expires_at))
}

fn params(query: Option<&str>, body: &[u8]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.extend(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())));
    pairs
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The access token of a call: `access_token` parameter or bearer header.
fn caller_token<'a>(pairs: &'a [(String, String)], headers: &'a HeaderMap) -> Option<&'a str> {
    param(pairs, "access_token")
        .or_else(|| headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")))
}

fn is_app_token(shared: &Shared, token: Option<&str>) -> bool {
    let config = lock(&shared.config);
    token == Some(format!("{}|{}", config.app_id, config.app_secret).as_str())
}

/// Answers and records the call; a fault injected for this endpoint comes first.
fn answer(shared: &Shared, endpoint: &'static str, status: u16, body: Value) -> Response {
    lock(&shared.counters).admin_calls.push(AdminCall { endpoint, status });
    respond(status, body)
}

async fn injected(shared: &Shared, endpoint: &'static str) -> Option<Response> {
    let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
    match crate::take_fault_for(shared, endpoint, "")? {
        crate::FaultKind::Error { code, http_status } => {
            Some(answer(shared, endpoint, http_status, meta_error(code, "Injected by the simulator", None, trace)))
        }
        crate::FaultKind::HttpStatus { status, .. } => {
            Some(answer(shared, endpoint, status, json!({"error": {"message": "Service temporarily unavailable"}})))
        }
        crate::FaultKind::Delay { millis, .. } => {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
            Some(answer(shared, endpoint, 500, json!({"error": {"message": "delayed by the simulator"}})))
        }
        crate::FaultKind::Redirect { status, location } => {
            lock(&shared.counters).admin_calls.push(AdminCall { endpoint, status });
            Some(crate::redirect(status, &location))
        }
        // Status and media faults mean nothing to these endpoints: answer as usual.
        crate::FaultKind::FailedStatus { .. } | crate::FaultKind::Corrupt | crate::FaultKind::ExpiredUrl => None,
    }
}

fn oauth_error(shared: &Shared, code: i64, message: &str) -> Response {
    let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
    answer(
        shared,
        "oauth",
        400,
        json!({"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": format!("Sim{trace:08X}")}}),
    )
}

/// `GET /{version}/oauth/access_token`.
pub(crate) async fn exchange(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Response {
    if let Some(response) = injected(&shared, "oauth").await {
        return response;
    }
    let pairs = params(uri.query(), &body);
    let (app_id, app_secret) = {
        let config = lock(&shared.config);
        (config.app_id.clone(), config.app_secret.clone())
    };
    if param(&pairs, "grant_type") != Some("fb_exchange_token") {
        return oauth_error(&shared, 100, "(#100) grant_type must be fb_exchange_token");
    }
    if param(&pairs, "client_id") != Some(app_id.as_str()) {
        return oauth_error(&shared, 101, "Error validating application. Invalid application ID.");
    }
    if param(&pairs, "client_secret") != Some(app_secret.as_str()) {
        return oauth_error(&shared, 1, "Error validating client secret.");
    }
    let Some(old) = param(&pairs, "fb_exchange_token") else {
        return oauth_error(&shared, 100, "(#100) Missing parameter fb_exchange_token");
    };
    let now = now_s();
    match token_info(&shared, old) {
        Some(info) if info.usable(now) && info.app_id == app_id => {}
        _ => return oauth_error(&shared, 190, "Error validating access token: Session has expired"),
    }
    let serial = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let digest = Sha256::digest(format!("{serial}:{now}:{old}:{:?}", std::time::Instant::now()).as_bytes());
    let token = format!("EAASIM{}", hex_upper(&digest[..24]));
    lock(&shared.counters).tokens.insert(token.clone(), TokenInfo::whatsapp(&app_id, now + SIXTY_DAYS));
    answer(&shared, "oauth", 200, json!({"access_token": token, "token_type": "bearer", "expires_in": SIXTY_DAYS}))
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        out.push_str(&format!("{b:02X}"));
        out
    })
}

/// `GET /{version}/debug_token`.
pub(crate) async fn debug_token(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = injected(&shared, "debug_token").await {
        return response;
    }
    let pairs = params(uri.query(), &[]);
    if !is_app_token(&shared, caller_token(&pairs, &headers)) {
        let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
        return answer(&shared, "debug_token", 400, meta_error(190, "Invalid OAuth access token", None, trace));
    }
    let input = param(&pairs, "input_token").unwrap_or_default();
    let now = now_s();
    let data = match token_info(&shared, input) {
        Some(info) if info.usable(now) => json!({
            "app_id": info.app_id, "type": "SYSTEM_USER", "application": "Simulated app",
            "data_access_expires_at": 0, "expires_at": info.expires_at, "is_valid": true,
            "issued_at": now, "scopes": info.scopes, "user_id": "1000000000000001",
        }),
        Some(info) => json!({
            "app_id": info.app_id, "type": "SYSTEM_USER", "application": "Simulated app",
            "expires_at": info.expires_at, "is_valid": false, "scopes": info.scopes,
            "error": {"code": 190, "message": "Error validating access token: Session has expired", "subcode": 463},
        }),
        None => json!({
            "is_valid": false, "scopes": [],
            "error": {"code": 190, "message": "Invalid OAuth access token - Cannot parse access token"},
        }),
    };
    answer(&shared, "debug_token", 200, json!({ "data": data }))
}

/// `POST /{version}/{app_id}/subscriptions`: verifies the callback, then stores it.
pub(crate) async fn subscribe(
    State(shared): State<Arc<Shared>>,
    Path((_version, app)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(response) = injected(&shared, "subscriptions").await {
        return response;
    }
    let pairs = params(uri.query(), &body);
    let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let app_id = lock(&shared.config).app_id.clone();
    if app != app_id || !is_app_token(&shared, caller_token(&pairs, &headers)) {
        return answer(&shared, "subscriptions", 400, meta_error(190, "Invalid OAuth access token", None, trace));
    }
    let (Some(object), Some(callback_url), Some(verify_token)) =
        (param(&pairs, "object"), param(&pairs, "callback_url"), param(&pairs, "verify_token"))
    else {
        let message = "Invalid parameter: object, callback_url and verify_token are required";
        return answer(&shared, "subscriptions", 400, meta_error(100, message, None, trace));
    };
    let challenge = format!("{}", 1_000_000_000 + trace * 7919);
    let mut url = match reqwest::Url::parse(callback_url) {
        Ok(url) => url,
        Err(_) => {
            return answer(
                &shared,
                "subscriptions",
                400,
                meta_error(100, "Invalid parameter: callback_url", None, trace),
            );
        }
    };
    url.query_pairs_mut()
        .append_pair("hub.mode", "subscribe")
        .append_pair("hub.challenge", &challenge)
        .append_pair("hub.verify_token", verify_token);
    let verified = match shared.http.get(url).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            if status == 200 && text == challenge {
                Ok(())
            } else if status == 200 {
                Err("The URL couldn't be validated. Response does not match challenge".to_owned())
            } else {
                Err(format!(
                    "The URL couldn't be validated. Callback verification failed with the following errors: HTTP Status Code = {status}"
                ))
            }
        }
        Err(_) => Err("The URL couldn't be validated. Callback verification failed: connection refused".to_owned()),
    };
    if let Err(message) = verified {
        return answer(&shared, "subscriptions", 400, meta_error(2200, &message, None, trace));
    }
    let fields: Vec<String> = param(&pairs, "fields")
        .unwrap_or("messages")
        .split(',')
        .map(|f| f.trim().to_owned())
        .filter(|f| !f.is_empty())
        .collect();
    let subscription = Subscription {
        app_id: app,
        object: object.to_owned(),
        callback_url: callback_url.to_owned(),
        verify_token: verify_token.to_owned(),
        fields,
    };
    {
        let mut counters = lock(&shared.counters);
        counters.subscriptions.retain(|s| s.object != subscription.object);
        counters.subscriptions.push(subscription);
    }
    answer(&shared, "subscriptions", 200, json!({"success": true}))
}

/// `GET /{version}/{app_id}/subscriptions` (faults for `subscriptions` apply here too).
pub(crate) async fn list_subscriptions(
    State(shared): State<Arc<Shared>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = injected(&shared, "subscriptions").await {
        return response;
    }
    let pairs = params(uri.query(), &[]);
    if !is_app_token(&shared, caller_token(&pairs, &headers)) {
        let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
        return respond(400, meta_error(190, "Invalid OAuth access token", None, trace));
    }
    let version = "v23.0";
    let data: Vec<Value> = lock(&shared.counters)
        .subscriptions
        .iter()
        .map(|s| {
            json!({"object": s.object, "callback_url": s.callback_url, "active": true,
                   "fields": s.fields.iter().map(|f| json!({"name": f, "version": version})).collect::<Vec<_>>()})
        })
        .collect();
    respond(200, json!({ "data": data }))
}

fn bearer_usable(shared: &Shared, headers: &HeaderMap, pairs: &[(String, String)]) -> bool {
    caller_token(pairs, headers).and_then(|t| token_info(shared, t)).is_some_and(|info| info.usable(now_s()))
}

/// `GET|POST /{version}/{waba_id}/subscribed_apps`: which apps receive the WABA's webhooks.
pub(crate) async fn subscribed_apps(
    State(shared): State<Arc<Shared>>,
    method: axum::http::Method,
    Path((_version, waba)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let pairs = params(uri.query(), &[]);
    let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
    if !bearer_usable(&shared, &headers, &pairs) {
        return respond(401, meta_error(190, "Invalid OAuth access token", None, trace));
    }
    let (waba_id, app_id) = {
        let config = lock(&shared.config);
        (config.waba_id.clone(), config.app_id.clone())
    };
    if waba != waba_id {
        return respond(400, meta_error(100, "Unsupported get request. Object does not exist", None, trace));
    }
    if method == axum::http::Method::POST {
        let mut counters = lock(&shared.counters);
        if !counters.subscribed_apps.contains(&app_id) {
            counters.subscribed_apps.push(app_id);
        }
        return respond(200, json!({"success": true}));
    }
    let data: Vec<Value> = lock(&shared.counters)
        .subscribed_apps
        .iter()
        .map(|id| json!({"whatsapp_business_api_data": {"id": id, "name": "Simulated app", "link": ""}}))
        .collect();
    respond(200, json!({ "data": data }))
}

/// `GET /{version}/{phone_number_id}`: the number's status, quality and throughput.
pub(crate) async fn phone_number(
    State(shared): State<Arc<Shared>>,
    Path((_version, id)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let pairs = params(uri.query(), &[]);
    let trace = shared.next_id.fetch_add(1, Ordering::Relaxed);
    if !bearer_usable(&shared, &headers, &pairs) {
        return respond(401, meta_error(190, "Invalid OAuth access token", None, trace));
    }
    let config = lock(&shared.config).clone();
    let level = if config.messages_per_second >= 1000 { "HIGH" } else { "STANDARD" };
    respond(
        200,
        json!({
            "display_phone_number": crate::display_number(&id), "id": id, "verified_name": "Simulated business",
            "status": config.phone_status, "quality_rating": "GREEN", "code_verification_status": "VERIFIED",
            "platform_type": "CLOUD_API", "throughput": {"level": level},
        }),
    )
}
