//! [`MetaAdmin`] over the Graph API: token exchange, `debug_token`, webhook subscriptions.
//!
//! Tokens travel in query strings (as Meta documents these calls) or form bodies; error messages
//! are built from Meta's error object and from reqwest errors stripped of their URL, so no token
//! reaches a log.

use serde::Deserialize;
use wa_core::graph_error::GraphErrorBody;
use wa_core::ports::{AdminError, ExchangedToken, MetaAdmin};
use wa_core::rotation::TokenDebug;
use wa_core::secrets::AppSecrets;

use crate::graph::GraphClient;

fn unreachable(error: reqwest::Error) -> AdminError {
    AdminError::Unreachable(error.without_url().to_string())
}

fn app_token(app: &AppSecrets) -> String {
    format!("{}|{}", app.app_id, app.app_secret)
}

/// Reads a response: its JSON on 2xx, Meta's error otherwise (a redirect, never followed, is an error).
async fn read<T: for<'de> Deserialize<'de>>(response: reqwest::Response) -> Result<T, AdminError> {
    if let Some(reason) = crate::graph::refused_redirect(&response) {
        return Err(AdminError::Unreachable(reason));
    }
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(unreachable)?;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&body)
            .map_err(|e| AdminError::Unreachable(format!("HTTP {status} with an unexpected body: {e}")));
    }
    match GraphErrorBody::parse(&body) {
        Some(error) if status < 500 => Err(AdminError::Meta { code: error.code, message: error.message }),
        Some(error) => Err(AdminError::Unreachable(format!("HTTP {status} (code {})", error.code))),
        None => Err(AdminError::Unreachable(format!("HTTP {status} without an error object"))),
    }
}

#[derive(Deserialize)]
struct Exchanged {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct Debugged {
    data: TokenDebug,
}

#[derive(Deserialize)]
struct Subscriptions {
    #[serde(default)]
    data: Vec<SubscriptionItem>,
}

#[derive(Deserialize)]
struct SubscriptionItem {
    #[serde(default)]
    object: String,
    #[serde(default)]
    callback_url: Option<String>,
}

#[derive(Deserialize)]
struct Success {
    #[serde(default)]
    success: bool,
}

impl GraphClient {
    fn admin_url(&self, path: &str, params: &[(&str, &str)]) -> Result<reqwest::Url, AdminError> {
        reqwest::Url::parse_with_params(&format!("{}/{}", self.version_base(), path), params)
            .map_err(|e| AdminError::Unreachable(format!("bad Graph URL: {e}")))
    }
}

impl MetaAdmin for GraphClient {
    async fn exchange_token(&self, app: &AppSecrets, token: &str) -> Result<ExchangedToken, AdminError> {
        let url = self.admin_url(
            "oauth/access_token",
            &[
                ("grant_type", "fb_exchange_token"),
                ("client_id", &app.app_id),
                ("client_secret", &app.app_secret),
                ("fb_exchange_token", token),
                ("set_token_expires_in_60_days", "true"),
            ],
        )?;
        let response = self.http().get(url).send().await.map_err(unreachable)?;
        let exchanged: Exchanged = read(response).await?;
        Ok(ExchangedToken { access_token: exchanged.access_token, expires_in: exchanged.expires_in })
    }

    async fn debug_token(&self, app: &AppSecrets, token: &str) -> Result<TokenDebug, AdminError> {
        let url = self.admin_url("debug_token", &[("input_token", token)])?;
        let response = self.http().get(url).bearer_auth(app_token(app)).send().await.map_err(unreachable)?;
        let debugged: Debugged = read(response).await?;
        Ok(debugged.data)
    }

    async fn callback_url(&self, app: &AppSecrets) -> Result<Option<String>, AdminError> {
        let url = self.admin_url(&format!("{}/subscriptions", app.app_id), &[])?;
        let response = self.http().get(url).bearer_auth(app_token(app)).send().await.map_err(unreachable)?;
        let listed: Subscriptions = read(response).await?;
        Ok(listed.data.into_iter().find(|s| s.object == "whatsapp_business_account").and_then(|s| s.callback_url))
    }

    async fn subscribe(&self, app: &AppSecrets, callback_url: &str, verify_token: &str) -> Result<(), AdminError> {
        let url = self.admin_url(&format!("{}/subscriptions", app.app_id), &[])?;
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("object", "whatsapp_business_account")
            .append_pair("callback_url", callback_url)
            .append_pair("verify_token", verify_token)
            .append_pair("fields", "messages")
            .append_pair("include_values", "true")
            .finish();
        let response = self
            .http()
            .post(url)
            .bearer_auth(app_token(app))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(unreachable)?;
        let answer: Success = read(response).await?;
        if answer.success {
            Ok(())
        } else {
            Err(AdminError::Unreachable("the subscription answer was not a success".into()))
        }
    }
}
