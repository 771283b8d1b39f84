//! `X-Hub-Signature-256`: HMAC-SHA256 of the exact request bytes with the app secret.
//!
//! Meta sends `sha256=<64 lowercase hex digits>`. We verify over the raw bytes received, never over a
//! re-serialization, compare in constant time, and accept any of several secrets (the current app
//! secret and, during a grace period after a manual reset, the previous one).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use thiserror::Error;

/// The header Meta signs webhook POSTs with.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

const PREFIX: &str = "sha256=";
const DIGEST_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused. None of the variants carries the body or a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header.
    #[error("signature header missing")]
    Missing,
    /// The header appeared more than once.
    #[error("signature header repeated")]
    Duplicated,
    /// The header does not start with `sha256=` (for example the legacy `sha1=`).
    #[error("signature header does not start with sha256=")]
    WrongScheme,
    /// The digest is not 64 lowercase hexadecimal digits.
    #[error("signature digest is not 64 lowercase hex digits")]
    Malformed,
    /// Well-formed, but no configured secret produces it.
    #[error("signature does not match")]
    Mismatch,
}

/// A parsed `X-Hub-Signature-256` digest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; DIGEST_LEN]);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signature(..)")
    }
}

impl Signature {
    /// Parses one header value: exactly `sha256=` followed by 64 lowercase hex digits.
    pub fn parse(header: &[u8]) -> Result<Self, SignatureError> {
        let hex_part = header.strip_prefix(PREFIX.as_bytes()).ok_or(SignatureError::WrongScheme)?;
        if hex_part.len() != DIGEST_LEN * 2 || !hex_part.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(SignatureError::Malformed);
        }
        let mut digest = [0u8; DIGEST_LEN];
        hex::decode_to_slice(hex_part, &mut digest).map_err(|_| SignatureError::Malformed)?;
        Ok(Self(digest))
    }

    /// Parses the header from all the values a request carried for it (there must be exactly one).
    pub fn from_header_values<'a, I>(mut values: I) -> Result<Self, SignatureError>
    where
        I: Iterator<Item = &'a [u8]>,
    {
        let first = values.next().ok_or(SignatureError::Missing)?;
        if values.next().is_some() {
            return Err(SignatureError::Duplicated);
        }
        Self::parse(first)
    }

    /// Checks the signature against `body` for each secret in turn, in constant time per secret.
    /// Returns the index of the secret that matched.
    pub fn verify_any<'s, I>(&self, body: &[u8], secrets: I) -> Result<usize, SignatureError>
    where
        I: IntoIterator<Item = &'s [u8]>,
    {
        for (index, secret) in secrets.into_iter().enumerate() {
            if self.verify(body, secret) {
                return Ok(index);
            }
        }
        Err(SignatureError::Mismatch)
    }

    /// Checks the signature against `body` with one secret, in constant time.
    #[must_use]
    pub fn verify(&self, body: &[u8], secret: &[u8]) -> bool {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
        let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&self.0).is_ok()
    }
}

/// Computes the header value Meta would send for `body` signed with `secret`.
#[must_use]
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let digest = match HmacSha256::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            mac.finalize().into_bytes()
        }
        Err(_) => return String::new(),
    };
    format!("{PREFIX}{}", hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"test-app-secret";

    fn check(body: &[u8], header: &str) -> Result<usize, SignatureError> {
        Signature::from_header_values(std::iter::once(header.as_bytes()))?.verify_any(body, [SECRET])
    }

    #[test]
    fn known_vector() {
        // Cross-checked with Python: hmac.new(b"test-app-secret", b'{"a":1}', hashlib.sha256).hexdigest()
        assert_eq!(
            sign(SECRET, br#"{"a":1}"#),
            "sha256=a9076adb7408d26443ef1902aaae098b7ab6b934eddfa6fc1338cd0153ddda4d"
        );
    }

    #[test]
    fn raw_unicode_bodies_verify_over_exact_bytes() {
        let bodies: [&str; 5] = [
            r#"{"text":{"body":"Olá, ação! 🎉👍🏽"}}"#,
            r#"{"text":{"body":"J'ai mangé des pâtes"}}"#,
            "{\"text\":{\"body\":\"\u{202B}مرحبا بالعالم\u{202C} שלום\"}}",
            r#"{"text":{"body":"\u00e4\u00f6\u00e5 \ud83d\ude00"}}"#,
            r#"{"text":{"body":"mail me: a@b.com, path a\/b/c"}}"#,
        ];
        for body in bodies {
            let header = sign(SECRET, body.as_bytes());
            assert_eq!(check(body.as_bytes(), &header), Ok(0), "{body}");
        }
    }

    #[test]
    fn reserialized_json_would_fail() {
        // Negative control: a receiver that parses and re-serializes before hashing breaks on
        // escaped unicode and escaped slashes, which is why we hash the raw bytes.
        let body = r#"{"text":{"body":"\u00e4\u00f6\u00e5 a\/b @x"}}"#;
        let header = sign(SECRET, body.as_bytes());
        let value: serde_json::Value = serde_json::from_str(body).unwrap();
        let reserialized = serde_json::to_vec(&value).unwrap();
        assert_ne!(reserialized, body.as_bytes());
        assert_eq!(check(&reserialized, &header), Err(SignatureError::Mismatch));
        assert_eq!(check(body.as_bytes(), &header), Ok(0));
    }

    #[test]
    fn header_variants_are_refused() {
        let body = br#"{"entry":[]}"#;
        let good = sign(SECRET, body);
        let digest = good.trim_start_matches(PREFIX);
        assert_eq!(Signature::from_header_values(std::iter::empty()), Err(SignatureError::Missing));
        assert_eq!(
            Signature::from_header_values([good.as_bytes(), good.as_bytes()].into_iter()),
            Err(SignatureError::Duplicated)
        );
        assert_eq!(check(body, &format!("sha1={digest}")), Err(SignatureError::WrongScheme));
        assert_eq!(check(body, digest), Err(SignatureError::WrongScheme));
        assert_eq!(check(body, &format!("SHA256={digest}")), Err(SignatureError::WrongScheme));
        assert_eq!(check(body, &format!("sha256={}", digest.to_uppercase())), Err(SignatureError::Malformed));
        assert_eq!(check(body, &format!("sha256={}", &digest[1..])), Err(SignatureError::Malformed));
        assert_eq!(check(body, &format!("sha256={digest}0")), Err(SignatureError::Malformed));
        assert_eq!(check(body, &format!("sha256={}zz", &digest[2..])), Err(SignatureError::Malformed));
        assert_eq!(check(body, &format!("sha256= {}", &digest[1..])), Err(SignatureError::Malformed));
        assert_eq!(check(body, ""), Err(SignatureError::WrongScheme));
        assert_eq!(check(body, &"sha256=".repeat(500)), Err(SignatureError::Malformed));
        assert_eq!(check(body, &format!("sha256={}", "0".repeat(64))), Err(SignatureError::Mismatch));
        assert_eq!(check(body, &good), Ok(0));
    }

    #[test]
    fn previous_secret_is_accepted_and_reported() {
        let body = b"{}";
        let header = sign(b"old-secret", body);
        let sig = Signature::parse(header.as_bytes()).unwrap();
        assert_eq!(sig.verify_any(body, [&b"new-secret"[..], &b"old-secret"[..]]), Ok(1));
        assert_eq!(sig.verify_any(body, [&b"new-secret"[..]]), Err(SignatureError::Mismatch));
    }

    #[test]
    fn debug_does_not_print_the_digest() {
        let sig = Signature::parse(sign(SECRET, b"x").as_bytes()).unwrap();
        assert_eq!(format!("{sig:?}"), "Signature(..)");
    }

    proptest! {
        #[test]
        fn any_one_byte_change_is_rejected(body in proptest::collection::vec(any::<u8>(), 1..2048),
                                           index in any::<proptest::sample::Index>(),
                                           flip in 1u8..=255) {
            let header = sign(SECRET, &body);
            let sig = Signature::parse(header.as_bytes()).unwrap();
            prop_assert!(sig.verify(&body, SECRET));
            let mut changed = body.clone();
            let at = index.index(changed.len());
            changed[at] ^= flip;
            prop_assert!(!sig.verify(&changed, SECRET));
        }

        #[test]
        fn parse_never_panics(header in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Signature::parse(&header);
        }
    }
}
