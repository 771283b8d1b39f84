//! TLS with the compiled-in roots, on loopback: a server whose certificate chains to a private test
//! CA (`fixtures/`) is trusted by a client given that CA (the control: the server works) and refused
//! by the Graph client, the SDK's HTTPS client and the SQS batch client, which trust Mozilla's roots only — verification is
//! on, and it uses our roots.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use aws_credential_types::Credentials;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wa_core::ports::{GraphApi, GraphFailure};
use wa_infra::graph::GraphClient;

const CA: &[u8] = include_bytes!("fixtures/test-ca.pem");
const CERT: &[u8] = include_bytes!("fixtures/localhost.pem");
const KEY: &[u8] = include_bytes!("fixtures/localhost.key");

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A TLS server on 127.0.0.1 answering each connection's first request with `200 {}`; its port.
async fn tls_server() -> u16 {
    let certs = CertificateDer::pem_slice_iter(CERT).collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 8192];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_certificate_outside_the_compiled_in_roots_is_refused() {
    let port = tls_server().await;

    // Control: with the test CA as its root, a client completes the handshake.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(CA).unwrap()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, tcp).await.expect("the test CA's client connects");

    // The Graph client: refused before anything is sent, so a retry is safe (unreachable, not ambiguous).
    let graph =
        GraphClient::new(&format!("https://127.0.0.1:{port}"), "v23.0", std::time::Duration::from_secs(5)).unwrap();
    match graph.send_message("1", "token", &serde_json::json!({"type": "text"})).await {
        Err(GraphFailure::Unreachable(reason)) => {
            assert!(reason.contains("UnknownIssuer"), "{reason}");
        }
        other => panic!("expected a refused certificate, got {other:?}"),
    }

    // The SDK's HTTPS client as every function builds it (Lambda's environment: no store named).
    let config = wa_infra::aws::loader_with(|_| None)
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(format!("https://127.0.0.1:{port}"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "wa-tests"))
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let error = sqs.send_message().queue_url("https://127.0.0.1/q").message_body("x").send().await.unwrap_err();
    let reason = wa_infra::aws::describe(&error);
    assert!(reason.contains("UnknownIssuer"), "{reason}");

    // The SendMessageBatch client, from the same configuration.
    let batch = wa_infra::sqs_batch::BatchClient::new(&config).unwrap();
    let error = batch.send_message_batch("https://127.0.0.1/q", &[("m0", "x")]).await.unwrap_err().to_string();
    assert!(error.contains("UnknownIssuer"), "{error}");
}
