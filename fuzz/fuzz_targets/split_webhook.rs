//! Any body: `split_webhook` answers events or an error, never panics, and every event it gives
//! serializes to the bytes serde_json writes, with a payload that is JSON by RFC 8259's grammar
//! (which allows a lone surrogate escape such as `"\ud971"`; serde_json's `Value` refuses one,
//! so the check reads it as `IgnoredAny`: found by this target, see
//! `fixtures/fuzz/split_webhook-lone-surrogate-key.json`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(events) = wa_core::event::split_webhook(body, 1_795_000_000_000) {
        for event in events {
            let json = event.to_json().expect("an event serializes");
            assert_eq!(json, serde_json::to_string(&event).expect("serde_json too"));
            if let Some(payload) = event.payload {
                serde_json::from_str::<serde::de::IgnoredAny>(payload.get()).expect("a payload is JSON");
            }
        }
    }
});
