//! [`MediaApi`] over HTTPS with reqwest: `GET {base}/{version}/{media-id}` for a download URL, and
//! the download itself with the bearer token, streamed chunk by chunk. Its own client: a download
//! of 100 MB takes longer than any send, so there is no overall timeout, only one per read
//! (`read_timeout`) and per connection. Redirects are not followed (a token goes only where it was
//! addressed).

use std::time::Duration;

use wa_core::graph_error::GraphErrorBody;
use wa_core::ports::{MediaApi, MediaApiError, MediaDownload, MediaInfo};

/// Meta's media endpoints.
#[derive(Debug, Clone)]
pub struct GraphMedia {
    http: reqwest::Client,
    base: String,
    version: String,
}

impl GraphMedia {
    /// A client for `base` and `version`; a read that waits longer than `read_timeout` fails.
    pub fn new(base: &str, version: &str, read_timeout: Duration) -> Result<Self, String> {
        let http = crate::tls::reqwest_builder()
            .map_err(|e| format!("cannot set up TLS for the Graph API: {e}"))?
            .read_timeout(read_timeout)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("wa-pipeline/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the media HTTP client: {e}"))?;
        Ok(Self { http, base: base.trim_end_matches('/').to_owned(), version: version.trim_matches('/').to_owned() })
    }
}

/// What an answer that is not 2xx means.
async fn failure(response: reqwest::Response) -> MediaApiError {
    let status = response.status().as_u16();
    if let Some(redirect) = crate::graph::refused_redirect(&response) {
        return MediaApiError::Transient(redirect);
    }
    let body = response.bytes().await.unwrap_or_default();
    let error = GraphErrorBody::parse(&body);
    match (status, error) {
        (_, Some(error)) if matches!(error.code, 0 | 190) => MediaApiError::Unauthorized(error.code),
        // Unknown or expired media id (Meta: code 100, subcode 33).
        (_, Some(error)) if error.code == 100 && error.error_subcode == Some(33) => MediaApiError::NotFound,
        (404 | 410, _) => MediaApiError::NotFound,
        (401 | 403, _) => MediaApiError::Unauthorized(190),
        (s, _) if s >= 500 || s == 429 => MediaApiError::Transient(format!("HTTP {s}")),
        (_, Some(error)) => MediaApiError::Meta { code: error.code, message: error.message },
        (s, None) => MediaApiError::Meta { code: 0, message: format!("HTTP {s} without an error object") },
    }
}

fn transport(error: &reqwest::Error) -> MediaApiError {
    MediaApiError::Transient(error.without_url_ref())
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    /// The error without its URL (a download URL carries a signature in its query).
    fn without_url_ref(&self) -> String {
        let kind = if self.is_timeout() {
            "timed out"
        } else if self.is_connect() {
            "cannot connect"
        } else if self.is_body() || self.is_decode() {
            "the body broke off"
        } else {
            "request failed"
        };
        kind.to_owned()
    }
}

/// A response body read chunk by chunk.
pub struct Download(reqwest::Response);

impl MediaDownload for Download {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, MediaApiError> {
        match self.0.chunk().await {
            Ok(chunk) => Ok(chunk.map(|c| c.to_vec())),
            Err(error) => Err(MediaApiError::Transient(error.without_url_ref())),
        }
    }
}

#[derive(serde::Deserialize)]
struct InfoBody {
    url: Option<String>,
    mime_type: Option<String>,
    sha256: Option<String>,
    #[serde(default)]
    file_size: Option<serde_json::Value>,
}

impl MediaApi for GraphMedia {
    type Download = Download;

    async fn media_info(&self, media_id: &str, phone_number_id: &str, token: &str) -> Result<MediaInfo, MediaApiError> {
        let query: String =
            form_urlencoded::Serializer::new(String::new()).append_pair("phone_number_id", phone_number_id).finish();
        let id: String = media_id.chars().filter(char::is_ascii_alphanumeric).collect();
        let url = format!("{}/{}/{id}?{query}", self.base, self.version);
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| MediaApiError::Transient(e.without_url_ref()))?;
        if !response.status().is_success() {
            return Err(failure(response).await);
        }
        let body: InfoBody = response.json().await.map_err(|e| MediaApiError::Transient(e.without_url_ref()))?;
        let url = body.url.filter(|u| !u.is_empty()).ok_or(MediaApiError::NotFound)?;
        let file_size = body.file_size.and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
        Ok(MediaInfo { url, mime_type: body.mime_type, sha256: body.sha256, file_size })
    }

    async fn download(&self, url: &str, token: &str) -> Result<Download, MediaApiError> {
        let response = self.http.get(url).bearer_auth(token).send().await.map_err(|e| transport(&e))?;
        if !response.status().is_success() {
            return Err(failure(response).await);
        }
        Ok(Download(response))
    }
}
