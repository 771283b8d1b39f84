//! `GET /webhook`: Meta's verification handshake.
//!
//! 200 with `hub.challenge` verbatim (text/plain) when `hub.mode=subscribe` and `hub.verify_token`
//! equals the verify token of the current secret version or of the pending one (a rotation in
//! progress); 403 otherwise, never echoing the challenge; 503 when the secret cannot be read.
//! No signature is involved. `/webhook` checks the default app's token, `/webhook/<app_id>` that
//! app's (404 for an app this deployment does not serve).

use lambda_http::{Body, Request, Response, http::Method};
use wa_core::apps::{AppRouting, webhook_app};
use wa_core::ports::SecretSource;
use wa_core::secrets::SecretStage;
use wa_core::subscription::{SubscriptionError, SubscriptionQuery};

/// Answers one verification request.
pub async fn handle<R: AppRouting>(apps: &R, request: &Request) -> Response<Body> {
    if request.method() != Method::GET {
        return respond(405, "method not allowed");
    }
    let Some(app) = webhook_app(request.uri().path()) else { return respond(404, "not found") };
    let secrets = match apps.for_app(app).await {
        Ok(Some(secrets)) => secrets,
        Ok(None) => {
            tracing::warn!(app = app.unwrap_or_default(), "verify_unknown_app");
            return respond(404, "unknown app");
        }
        Err(error) => {
            tracing::error!(%error, "cannot read the verify token");
            return respond(503, "temporarily unavailable");
        }
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let param = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let query = SubscriptionQuery {
        mode: param("hub.mode"),
        verify_token: param("hub.verify_token"),
        challenge: param("hub.challenge"),
    };

    let mut refreshed = false;
    loop {
        let tokens = match accepted_tokens(secrets, refreshed).await {
            Ok(tokens) => tokens,
            Err(error) => {
                tracing::error!(%error, "cannot read the verify token");
                return respond(503, "temporarily unavailable");
            }
        };
        match query.check(tokens.iter().map(String::as_str)) {
            Ok(challenge) => {
                tracing::info!("verify_ok");
                return Response::builder()
                    .status(200)
                    .header("content-type", "text/plain")
                    .body(Body::from(challenge.to_owned()))
                    .unwrap_or_else(|_| respond(500, "internal error"));
            }
            // A rotation may have just written a pending token: look again once (rate-limited).
            Err(SubscriptionError::TokenMismatch) if !refreshed => refreshed = true,
            Err(reason) => {
                tracing::warn!(%reason, "verify_rejected");
                return respond(403, "forbidden");
            }
        }
    }
}

async fn accepted_tokens<S: SecretSource>(
    secrets: &S,
    refresh: bool,
) -> Result<Vec<String>, wa_core::ports::SecretError> {
    let mut tokens = Vec::with_capacity(2);
    for stage in [SecretStage::Current, SecretStage::Pending] {
        let value = if refresh { secrets.refresh(stage).await } else { secrets.get(stage).await };
        match value {
            Ok(Some(secret)) => tokens.push(secret.verify_token.clone()),
            Ok(None) => {}
            Err(e) if stage == SecretStage::Current => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the pending secret; using the current one only")
            }
        }
    }
    Ok(tokens)
}

fn respond(status: u16, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = lambda_http::http::StatusCode::from_u16(status).unwrap_or_default();
    response.headers_mut().insert("content-type", lambda_http::http::HeaderValue::from_static("text/plain"));
    response
}
