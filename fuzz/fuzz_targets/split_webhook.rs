//! Any body: `split_webhook` answers events or an error, never panics, and every event it gives
//! serializes to the bytes serde_json writes, with a payload that is valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(events) = wa_core::event::split_webhook(body, 1_795_000_000_000) {
        for event in events {
            let json = event.to_json().expect("an event serializes");
            assert_eq!(json, serde_json::to_string(&event).expect("serde_json too"));
            if let Some(payload) = event.payload {
                serde_json::from_str::<serde_json::Value>(payload.get()).expect("a payload is JSON");
            }
        }
    }
});
