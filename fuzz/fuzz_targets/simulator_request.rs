//! The simulator's own request rules (`wa_simulator::checks`, the test oracle's parsing of a
//! send): any bytes as the body of `POST /{phone_number_id}/messages` never panic the checks, and
//! a body they accept is a JSON object with `messaging_product: whatsapp`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(data) else { return };
    if wa_simulator::checks::check(&body).is_ok() {
        assert_eq!(body.get("messaging_product").and_then(|v| v.as_str()), Some("whatsapp"));
    }
});
