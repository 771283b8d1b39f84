//! The webhook verification GET: `hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`.
//!
//! Meta sends it whenever the callback URL or the verify token is set. We answer with the
//! challenge only when the token equals one of the accepted tokens (the current one and, during a
//! rotation, the pending one). Tokens are compared through their SHA-256 digests with a
//! constant-time equality, so neither their content nor their length leaks through timing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// Why a verification request was refused. Never carries the token or the challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SubscriptionError {
    /// `hub.mode` is missing or not `subscribe`.
    #[error("hub.mode is not subscribe")]
    WrongMode,
    /// `hub.verify_token` is missing.
    #[error("hub.verify_token missing")]
    MissingToken,
    /// `hub.challenge` is missing or empty.
    #[error("hub.challenge missing")]
    MissingChallenge,
    /// The token matches none of the accepted tokens.
    #[error("hub.verify_token does not match")]
    TokenMismatch,
}

/// The three `hub.*` query parameters of a verification request.
#[derive(Debug, Default, Clone, Copy)]
pub struct SubscriptionQuery<'a> {
    /// `hub.mode`
    pub mode: Option<&'a str>,
    /// `hub.verify_token`
    pub verify_token: Option<&'a str>,
    /// `hub.challenge`
    pub challenge: Option<&'a str>,
}

impl<'a> SubscriptionQuery<'a> {
    /// Checks the request against the accepted tokens and returns the challenge to echo verbatim.
    pub fn check<'t, I>(&self, accepted_tokens: I) -> Result<&'a str, SubscriptionError>
    where
        I: IntoIterator<Item = &'t str>,
    {
        if self.mode != Some("subscribe") {
            return Err(SubscriptionError::WrongMode);
        }
        let token = self.verify_token.ok_or(SubscriptionError::MissingToken)?;
        let challenge = self.challenge.filter(|c| !c.is_empty()).ok_or(SubscriptionError::MissingChallenge)?;
        let offered = Sha256::digest(token.as_bytes());
        let mut matched = subtle::Choice::from(0);
        for candidate in accepted_tokens {
            if candidate.is_empty() {
                continue;
            }
            matched |= Sha256::digest(candidate.as_bytes()).ct_eq(&offered);
        }
        if bool::from(matched) { Ok(challenge) } else { Err(SubscriptionError::TokenMismatch) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query<'a>(mode: &'a str, token: &'a str, challenge: &'a str) -> SubscriptionQuery<'a> {
        SubscriptionQuery { mode: Some(mode), verify_token: Some(token), challenge: Some(challenge) }
    }

    #[test]
    fn current_or_pending_token_is_accepted() {
        let q = query("subscribe", "pending-token", "1158201444");
        assert_eq!(q.check(["current-token", "pending-token"]), Ok("1158201444"));
        assert_eq!(query("subscribe", "current-token", "x y").check(["current-token"]), Ok("x y"));
    }

    #[test]
    fn everything_else_is_refused() {
        let tokens = ["current-token"];
        assert_eq!(query("unsubscribe", "current-token", "1").check(tokens), Err(SubscriptionError::WrongMode));
        assert_eq!(query("subscribe", "current-tokeN", "1").check(tokens), Err(SubscriptionError::TokenMismatch));
        assert_eq!(
            query("subscribe", "current-token-longer", "1").check(tokens),
            Err(SubscriptionError::TokenMismatch)
        );
        assert_eq!(query("subscribe", "", "1").check(tokens), Err(SubscriptionError::TokenMismatch));
        assert_eq!(query("subscribe", "", "1").check([""]), Err(SubscriptionError::TokenMismatch));
        assert_eq!(query("subscribe", "current-token", "").check(tokens), Err(SubscriptionError::MissingChallenge));
        assert_eq!(SubscriptionQuery::default().check(tokens), Err(SubscriptionError::WrongMode));
        let no_token = SubscriptionQuery { mode: Some("subscribe"), verify_token: None, challenge: Some("1") };
        assert_eq!(no_token.check(tokens), Err(SubscriptionError::MissingToken));
    }
}
