//! Root certificates for TLS: Mozilla's, compiled in (`webpki-root-certs`), for the AWS SDK's HTTP
//! client and the Graph client. By default both would read and parse the system's certificate store
//! at every cold start (3.3 ms of CPU here, each); the compiled-in roots cost 0.2 ms (the Graph
//! client, parsed certificates) and 0.8 ms (the SDK, which takes PEM text). An operator who points
//! `SSL_CERT_FILE` or `SSL_CERT_DIR` at certificates of their own (a TLS-inspecting proxy's, say)
//! gets the system's store instead, read through those variables, as before.

use std::ffi::OsString;

use base64::Engine;

/// Whether the operator names a certificate store (`SSL_CERT_FILE`/`SSL_CERT_DIR`, non-empty), so
/// that the system's store is to be used; `var` reads the environment.
pub fn operator_store(var: impl Fn(&str) -> Option<OsString>) -> bool {
    ["SSL_CERT_FILE", "SSL_CERT_DIR"].iter().any(|name| var(name).is_some_and(|v| !v.is_empty()))
}

/// The compiled-in roots, parsed (those rustls takes; a test checks that it takes every one).
#[must_use]
pub fn root_store() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
    roots
}

/// The compiled-in roots as PEM text (what the SDK's trust store takes).
#[must_use]
pub fn roots_pem() -> String {
    let mut pem = String::with_capacity(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() * 2048);
    let mut text = String::new();
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        text.clear();
        base64::engine::general_purpose::STANDARD.encode_string(cert.as_ref(), &mut text);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in text.as_bytes().chunks(64) {
            // Base64 output is ASCII: every 64-byte chunk is valid UTF-8.
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem
}

/// The rustls configuration for reqwest clients (Graph, SQS): the compiled-in roots, or `None` —
/// reqwest's default, the system's store — when the operator names a certificate store.
pub fn rustls_config(var: impl Fn(&str) -> Option<OsString>) -> Result<Option<rustls::ClientConfig>, String> {
    if operator_store(var) {
        return Ok(None);
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(root_store())
        .with_no_client_auth();
    Ok(Some(config))
}

/// A reqwest client builder with [`rustls_config`] for this process's environment.
pub fn reqwest_builder() -> Result<reqwest::ClientBuilder, String> {
    let builder = reqwest::Client::builder();
    Ok(match rustls_config(|name| std::env::var_os(name))? {
        Some(tls) => builder.tls_backend_preconfigured(tls),
        None => builder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn reqwest_uses_compiled_in_roots_unless_the_operator_names_a_certificate_store() {
        assert!(rustls_config(|_| None).unwrap().is_some());
        assert!(rustls_config(|_| Some(OsString::new())).unwrap().is_some(), "an empty variable names nothing");
        for name in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
            let config = rustls_config(|n| (n == name).then(|| "/etc/company-ca.pem".into())).unwrap();
            assert!(config.is_none(), "{name} set: the system's store, as reqwest reads it");
        }
    }

    #[test]
    fn every_compiled_in_root_is_taken_and_survives_pem() {
        let total = webpki_root_certs::TLS_SERVER_ROOT_CERTS.len();
        assert!(total > 100, "{total} roots");
        // The SDK adds each PEM certificate with `expect`: one it cannot parse would panic at start-up.
        assert_eq!(root_store().len(), total, "rustls takes every compiled-in root");
        let parsed: Vec<CertificateDer<'_>> =
            CertificateDer::pem_slice_iter(roots_pem().as_bytes()).collect::<Result<_, _>>().unwrap();
        assert_eq!(parsed.len(), total);
        assert!(parsed.iter().zip(webpki_root_certs::TLS_SERVER_ROOT_CERTS).all(|(a, b)| a.as_ref() == b.as_ref()));
    }

    #[test]
    fn an_operator_store_is_named_by_either_variable() {
        assert!(!operator_store(|_| None));
        assert!(!operator_store(|_| Some(OsString::new())), "an empty variable names nothing");
        for name in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
            assert!(operator_store(|n| (n == name).then(|| "/etc/company-ca.pem".into())), "{name}");
        }
    }
}
