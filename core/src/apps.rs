//! Several Meta apps and business numbers in one deployment.
//!
//! Each app has its own secret. Webhooks name their app by path: `/webhook` is the default app
//! (`WHATSAPP_SECRET_ID`), `/webhook/<app_id>` any app (the default one included), so each app's
//! Meta callback URL can be told apart and its signature checked with its own app secret. Sends
//! are routed by `phone_number_id` to the app that owns the number, then to the number's own token
//! in that secret (`phone_number_tokens`) or the app's `access_token`.

use std::collections::BTreeMap;
use std::future::Future;

use crate::ports::{SecretError, SecretSource};
use crate::secrets::SecretStage;

/// Which secret serves a webhook app or a business number.
pub trait AppRouting: Send + Sync {
    /// The secret source of one app.
    type Source: SecretSource;

    /// The source for a webhook path's app (`None`: the default app); `Ok(None)` for an app this
    /// deployment does not serve.
    fn for_app(&self, app_id: Option<&str>) -> impl Future<Output = Result<Option<&Self::Source>, SecretError>> + Send;

    /// The source whose tokens send for `phone_number_id`.
    fn for_number(&self, phone_number_id: &str) -> &Self::Source;
}

/// One app: every number sends with its secret; `/webhook/<id>` is served when `<id>` is its app id.
impl<S: SecretSource> AppRouting for S {
    type Source = S;

    async fn for_app(&self, app_id: Option<&str>) -> Result<Option<&S>, SecretError> {
        match app_id {
            None => Ok(Some(self)),
            Some(id) => Ok(self.get(SecretStage::Current).await?.filter(|s| s.app_id == id).map(|_| self)),
        }
    }

    fn for_number(&self, _: &str) -> &S {
        self
    }
}

/// Several apps: a default one, others by app id, and which app owns which number.
#[derive(Debug)]
pub struct Apps<S> {
    /// The default app (`/webhook`, and numbers no other app owns).
    pub default: S,
    /// Other apps, by app id (`APP_SECRET_IDS`).
    pub others: BTreeMap<String, S>,
    /// phone_number_id → app id (`PHONE_NUMBER_APPS`).
    pub numbers: BTreeMap<String, String>,
}

impl<S: SecretSource> AppRouting for Apps<S> {
    type Source = S;

    async fn for_app(&self, app_id: Option<&str>) -> Result<Option<&S>, SecretError> {
        match app_id.map(|id| (id, self.others.get(id))) {
            None => Ok(Some(&self.default)),
            Some((_, Some(source))) => Ok(Some(source)),
            Some((id, None)) => self.default.for_app(Some(id)).await,
        }
    }

    fn for_number(&self, phone_number_id: &str) -> &S {
        self.numbers.get(phone_number_id).and_then(|app| self.others.get(app)).unwrap_or(&self.default)
    }
}

/// The app a webhook path names: `/webhook` → `Some(None)`, `/webhook/<id>` → `Some(Some(id))`,
/// anything else → `None`. A trailing slash and an API Gateway stage prefix are tolerated.
#[must_use]
pub fn webhook_app(path: &str) -> Option<Option<&str>> {
    let path = path.trim_end_matches('/');
    let (_, rest) = path.rsplit_once("/webhook")?;
    match rest {
        "" => Some(None),
        id if id.starts_with('/')
            && id.len() > 1
            && id[1..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Some(Some(&id[1..]))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_paths_name_their_app() {
        assert_eq!(webhook_app("/webhook"), Some(None));
        assert_eq!(webhook_app("/webhook/"), Some(None));
        assert_eq!(webhook_app("/prod/webhook"), Some(None));
        assert_eq!(webhook_app("/webhook/1234567890"), Some(Some("1234567890")));
        assert_eq!(webhook_app("/webhook/12/34"), None);
        assert_eq!(webhook_app("/hooks"), None);
        assert_eq!(webhook_app("/webhookx"), None);
        assert_eq!(webhook_app("/"), None);
    }
}
