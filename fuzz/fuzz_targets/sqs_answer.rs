//! The answers of SQS `SendMessageBatch` (any bytes, as a 200 answer or as an error answer of any
//! status): parsing never panics; an entry the answer does not report as successful is reported
//! failed (so that it is retried, never taken as sent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wa_infra::sqs_batch::{answer, service_error};

fuzz_target!(|data: &[u8]| {
    let entries = [("m0", "a"), ("m1", "b"), ("m2", "c")];
    if let Ok(failed) = answer(data, &entries) {
        let text = String::from_utf8_lossy(data);
        for (id, _) in entries {
            // Not named anywhere in the answer: it cannot have been reported successful.
            if !text.contains(id) && !text.contains('\\') {
                assert!(failed.iter().any(|f| f.id == id), "{id} missing from the answer but not failed");
            }
        }
    }
    let status = data.first().map_or(500, |b| 400 + u16::from(*b));
    let (error, _retry) = service_error(status, data);
    let _ = error.to_string();
});
