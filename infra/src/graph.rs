//! [`GraphApi`] over HTTPS with reqwest (rustls): `POST {base}/{version}/{phone_number_id}/messages`.
//!
//! Failures are sorted by what they mean for a retry: Meta's error object on a 4xx (classified by
//! code); ambiguous (timeout, connection lost after sending, any 5xx: the message may have been
//! accepted); unreachable (the request never left: connection refused, DNS; or it was answered
//! with a redirect, which is never followed).

use std::time::Duration;

use serde::Deserialize;
use wa_core::graph_error::GraphErrorBody;
use wa_core::ports::{GraphAccepted, GraphApi, GraphFailure};

/// Meta's Graph API host.
pub const DEFAULT_BASE: &str = "https://graph.facebook.com";
/// The Graph API version we pin: v25.0 (v23.0, the version of Meta's published OpenAPI spec,
/// is served until 2027-10).
pub const DEFAULT_VERSION: &str = "v25.0";

/// A Graph API client; build it once per process.
#[derive(Debug, Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    version: String,
}

impl GraphClient {
    /// A client for `base` (e.g. [`DEFAULT_BASE`] or the simulator) and `version`, whose requests
    /// give up after `timeout` (keep it well below the function timeout).
    pub fn new(base: &str, version: &str, timeout: Duration) -> Result<Self, String> {
        let http = crate::tls::reqwest_builder()
            .map_err(|e| format!("cannot set up TLS for the Graph API: {e}"))?
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .pool_idle_timeout(Duration::from_secs(50))
            .user_agent(concat!("wa-pipeline/", env!("CARGO_PKG_VERSION")))
            // A message, or a token in a query string, goes only where it was addressed. Meta's
            // API does not redirect; a base that does (`http://` for `https://`, a moved proxy)
            // is a configuration error, reported as such ([`refused_redirect`]) instead of being
            // followed to another address, re-sent as a GET, or stripped of its token and
            // refused as if the token were bad.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the Graph HTTP client: {e}"))?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned(), version: version.trim_matches('/').to_owned() })
    }

    /// `{base}/{version}`.
    #[must_use]
    pub fn version_base(&self) -> String {
        format!("{}/{}", self.base, self.version)
    }

    /// The shared HTTP client (one connection pool per process).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The messages endpoint of a number.
    #[must_use]
    pub fn messages_url(&self, phone_number_id: &str) -> String {
        format!("{}/{}/{}/messages", self.base, self.version, phone_number_id)
    }
}

/// The error for a redirect answer, when `response` is one: its status and where it points, as
/// scheme, host and port only (the rest may echo a token from the query string).
pub fn refused_redirect(response: &reqwest::Response) -> Option<String> {
    let status = response.status();
    if !status.is_redirection() {
        return None;
    }
    let target = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|location| location.to_str().ok())
        .and_then(|location| response.url().join(location).ok())
        .map_or_else(String::new, |url| {
            let port = url.port().map_or_else(String::new, |port| format!(":{port}"));
            format!(" to {}://{}{port}", url.scheme(), url.host_str().unwrap_or_default())
        });
    Some(format!(
        "HTTP {} redirect{target}, not followed: nothing was sent; GRAPH_API_BASE must be the API's own address",
        status.as_u16()
    ))
}

#[derive(Deserialize)]
struct SendResponse {
    #[serde(default)]
    messages: Vec<SentMessage>,
    #[serde(default)]
    contacts: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: Option<String>,
    message_status: Option<String>,
}

/// Interprets a Graph response.
pub fn interpret(status: u16, body: &[u8]) -> Result<GraphAccepted, GraphFailure> {
    if (200..300).contains(&status) {
        let parsed: Option<SendResponse> = serde_json::from_slice(body).ok();
        let (messages, contacts) = parsed.map_or_else(Default::default, |r| (r.messages, r.contacts));
        let first = messages.into_iter().next();
        return Ok(GraphAccepted {
            wamid: first.as_ref().and_then(|m| m.id.clone()),
            message_status: first.and_then(|m| m.message_status),
            contacts,
        });
    }
    let error = GraphErrorBody::parse(body);
    if status >= 500 {
        // The request reached Meta and failed there: it may or may not have been processed.
        let code = error.map_or_else(|| "no error object".to_owned(), |e| format!("code {}", e.code));
        return Err(GraphFailure::Ambiguous(format!("HTTP {status} ({code})")));
    }
    if let Some(error) = error {
        return Err(GraphFailure::Api { http_status: status, error: Box::new(error) });
    }
    match status {
        429 => Err(GraphFailure::Api {
            http_status: status,
            error: Box::new(GraphErrorBody {
                code: 4,
                message: "HTTP 429 without an error object".into(),
                ..Default::default()
            }),
        }),
        _ => Err(GraphFailure::Api {
            http_status: status,
            error: Box::new(GraphErrorBody {
                code: 100,
                message: format!("HTTP {status} without an error object"),
                ..Default::default()
            }),
        }),
    }
}

impl GraphApi for GraphClient {
    async fn send_message(
        &self,
        phone_number_id: &str,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<GraphAccepted, GraphFailure> {
        let response = self.http.post(self.messages_url(phone_number_id)).bearer_auth(token).json(body).send().await;
        let response = match response {
            Ok(response) => response,
            // The whole chain of causes (a refused connection, an untrusted certificate), without the URL.
            Err(e) if e.is_connect() => return Err(GraphFailure::Unreachable(crate::aws::describe(&e.without_url()))),
            Err(e) => return Err(GraphFailure::Ambiguous(crate::aws::describe(&e.without_url()))),
        };
        if let Some(reason) = refused_redirect(&response) {
            return Err(GraphFailure::Unreachable(reason));
        }
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| GraphFailure::Ambiguous(e.without_url().to_string()))?;
        interpret(status, &bytes)
    }

    /// `POST /{phone-number-id}/media` as `multipart/form-data` (RFC 7578): `messaging_product`,
    /// `type` (the MIME type) and `file`. A failed or unanswered upload is retried by the caller:
    /// an upload that reached Meta only leaves an unused id behind (Meta drops it after 30 days).
    async fn upload_media(
        &self,
        phone_number_id: &str,
        token: &str,
        mime_type: &str,
        filename: &str,
        bytes: Vec<u8>,
    ) -> Result<String, GraphFailure> {
        let (content_type, body) = multipart_body(mime_type, filename, &bytes);
        drop(bytes);
        let url = format!("{}/{}/{}/media", self.base, self.version, phone_number_id);
        let response = self
            .http
            .post(url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .timeout(UPLOAD_TIMEOUT)
            .body(body)
            .send()
            .await
            .map_err(|e| GraphFailure::Unreachable(crate::aws::describe(&e.without_url())))?;
        if let Some(reason) = refused_redirect(&response) {
            return Err(GraphFailure::Unreachable(reason));
        }
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| GraphFailure::Unreachable(e.without_url().to_string()))?;
        if (200..300).contains(&status) {
            let id = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("id").and_then(serde_json::Value::as_str).map(str::to_owned));
            return id.ok_or_else(|| GraphFailure::Unreachable("the upload's answer has no media id".into()));
        }
        match interpret(status, &bytes) {
            Err(GraphFailure::Ambiguous(reason)) => Err(GraphFailure::Unreachable(reason)),
            Err(failure) => Err(failure),
            Ok(_) => Err(GraphFailure::Unreachable(format!("HTTP {status}"))),
        }
    }
}

/// How long an upload of up to 100 MB may take.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// A `multipart/form-data` body: its `Content-Type` (with the boundary) and bytes.
fn multipart_body(mime_type: &str, filename: &str, file: &[u8]) -> (String, Vec<u8>) {
    use sha2::Digest;
    // A boundary that cannot occur in the file: derived from its digest.
    let boundary = format!("wa-{}", hex::encode(&sha2::Sha256::digest(file)[..12]));
    let safe_name: String = filename.chars().filter(|c| !matches!(c, '"' | '\r' | '\n' | '\\')).collect();
    let safe_mime: String = mime_type.chars().filter(|c| !c.is_control()).collect();
    let mut body = Vec::with_capacity(file.len() + 512);
    let field = |body: &mut Vec<u8>, name: &str, value: &str| {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    };
    field(&mut body, "messaging_product", "whatsapp");
    field(&mut body, "type", &safe_mime);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{safe_name}\"\r\nContent-Type: {safe_mime}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_takes_the_compiled_in_roots() {
        // reqwest takes the config only when it is of the rustls it was built with: it fails here otherwise.
        let client = GraphClient::new(DEFAULT_BASE, DEFAULT_VERSION, Duration::from_secs(5));
        assert!(client.is_ok(), "{:?}", client.err());
    }

    #[test]
    fn responses_are_interpreted() {
        let ok = interpret(
            200,
            br#"{"messaging_product":"whatsapp","messages":[{"id":"wamid.1","message_status":"accepted"}]}"#,
        );
        assert_eq!(ok.unwrap().wamid.as_deref(), Some("wamid.1"));
        assert_eq!(interpret(200, br#"{"success":true}"#).unwrap().wamid, None);
        match interpret(400, br#"{"error":{"code":131056,"message":"pair"}}"#) {
            Err(GraphFailure::Api { error, .. }) => assert_eq!(error.code, 131_056),
            other => panic!("{other:?}"),
        }
        assert!(matches!(interpret(502, b"<html>bad gateway</html>"), Err(GraphFailure::Ambiguous(_))));
        assert!(matches!(
            interpret(500, br#"{"error":{"code":131000,"message":"x"}}"#),
            Err(GraphFailure::Ambiguous(_))
        ));
        assert!(matches!(interpret(429, b""), Err(GraphFailure::Api { error, .. }) if error.code == 4));
    }
}
