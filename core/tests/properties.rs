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
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
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
