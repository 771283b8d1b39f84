//! Any header and body: parsing `X-Hub-Signature-256` and checking it never panic, and the
//! signature of a body always verifies against the same body and secret, never another secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wa_core::signature::{Signature, sign};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (header, body) = data.split_at(split);
    let secret = b"fuzz-app-secret";
    if let Ok(signature) = Signature::parse(header) {
        let _ = signature.verify(body, secret);
    }
    let signed = sign(secret, body);
    let signature = Signature::parse(signed.as_bytes()).expect("our own header parses");
    assert!(signature.verify(body, secret));
    assert!(!signature.verify(body, b"another-secret"));
});
