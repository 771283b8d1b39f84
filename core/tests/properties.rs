//! The fuzz targets' properties (`fuzz/fuzz_targets`, long runs: `scripts/fuzz.sh`), briefly on
//! stable in the suite: arbitrary input never panics the webhook splitter, the SendRequest
//! parser and validator, the template linter or the signature check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use serde_json::{Value, json};
use wa_core::signature::{Signature, sign};

/// Arbitrary JSON, a few levels deep, with the keys our parsers look for.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("type".to_owned()),
        Just("text".to_owned()),
        Just("name".to_owned()),
        Just("components".to_owned()),
        Just("buttons".to_owned()),
        Just("message".to_owned()),
        Just("to".to_owned()),
        Just("template".to_owned()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~{}]{0,40}".prop_map(Value::String),
        Just(json!("{{1}}")),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_linter_and_the_registry_never_panic(value in json_value()) {
        let _ = wa_core::template_lint::lint(&value);
        let _ = wa_core::templates::shape(&value);
        let wrapped = json!({"name": "t", "language": "en_US", "category": "UTILITY", "components": [value]});
        let _ = wa_core::template_lint::lint(&wrapped);
    }

    #[test]
    fn send_requests_never_panic(message in json_value(), to in "[+0-9A-Z.]{0,20}") {
        let request = json!({"phone_number_id": "1", "to": to, "message": message});
        if let Ok(parsed) = wa_core::send::SendRequest::from_json(&request.to_string())
            && parsed.validate().is_ok()
        {
            let _ = parsed.graph_body(false);
            let _ = wa_core::templates::check_send(&parsed.message, None, true);
            let _ = wa_core::media::S3Media::of(&parsed.message);
        }
    }

    #[test]
    fn webhooks_of_any_shape_never_panic(value in json_value()) {
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]});
        if let Ok(events) = wa_core::event::split_webhook(body.to_string().as_bytes(), 0) {
            for event in events {
                prop_assert_eq!(event.to_json().unwrap(), serde_json::to_string(&event).unwrap());
            }
        }
    }

    #[test]
    fn signatures_verify_only_their_body_and_secret(header in prop::collection::vec(any::<u8>(), 0..80), body in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(signature) = Signature::parse(&header) {
            let _ = signature.verify(&body, b"secret");
        }
        let signed = Signature::parse(sign(b"secret", &body).as_bytes()).unwrap();
        prop_assert!(signed.verify(&body, b"secret"));
        prop_assert!(!signed.verify(&body, b"other"));
    }
}

/// A small deterministic generator (no dependency): xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

/// Signature properties at scale: 100,000 mutated payloads (a bit flipped, truncated, extended,
/// the header altered) are all refused; 10,000 random Unicode payloads signed correctly are all
/// accepted.
#[test]
fn a_hundred_thousand_mutations_are_refused_and_ten_thousand_good_signatures_accepted() {
    let secret = b"test-app-secret";
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let base = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messages":[{"from":"16505551234","id":"wamid.1","type":"text","text":{"body":"Hi \u00e9 \ud83d\ude00"}}]}}]}]}"#.to_vec();
    let header = sign(secret, &base);
    let mut accepted = 0;
    for i in 0..100_000 {
        let mut body = base.clone();
        let mut head = header.clone().into_bytes();
        match i % 4 {
            0 => {
                let at = rng.below(body.len());
                body[at] ^= 1 << rng.below(8);
            }
            1 => body.truncate(rng.below(body.len())),
            2 => body.push(u8::try_from(rng.below(256)).unwrap()),
            _ => {
                // The header: one hex digit changed (to another hex digit), or its prefix altered.
                let at = 7 + rng.below(64);
                head[at] = if head[at] == b'0' { b'1' } else { b'0' };
            }
        }
        if Signature::parse(&head).is_ok_and(|s| s.verify(&body, secret)) {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 0, "mutated payloads accepted");
    let mut refused = 0;
    for _ in 0..10_000 {
        let text: String =
            (0..rng.below(200)).filter_map(|_| char::from_u32(u32::try_from(rng.below(0x11_0000)).unwrap())).collect();
        let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "text": text})).unwrap();
        let signed = sign(secret, &body);
        if !Signature::parse(signed.as_bytes()).is_ok_and(|s| s.verify(&body, secret)) {
            refused += 1;
        }
    }
    assert_eq!(refused, 0, "good signatures refused");
}

/// Found by the `split_webhook` fuzz target: a key holding a lone surrogate escape (`"\ud971\ng"`,
/// JSON by RFC 8259's grammar, refused by serde_json's `Value`). The body splits into events whose
/// payloads keep the text as it came; reading such a payload as a typed status fails, which the
/// event processor treats as uninterpretable (forwarded unchanged, state untouched) instead of
/// retrying it into the DLQ.
#[test]
fn a_lone_surrogate_escape_is_kept_as_it_came() {
    let body =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/fuzz/split_webhook-lone-surrogate-key.json"))
            .unwrap();
    let events = wa_core::event::split_webhook(&body, 0).unwrap();
    assert!(!events.is_empty());
    let odd = events
        .iter()
        .find(|e| e.payload.is_some_and(|p| p.get().contains("\\ud971")))
        .expect("the item with the odd key");
    assert!(
        serde_json::from_str::<serde_json::Value>(odd.payload.unwrap().get()).is_err(),
        "serde_json's Value refuses it"
    );
    assert!(odd.payload_as::<wa_core::webhook::Status>().is_err(), "so the processor finds it uninterpretable");
    for event in &events {
        assert_eq!(event.to_json().unwrap(), serde_json::to_string(event).unwrap());
    }
}
