//! Any JSON: the template linter answers findings, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let _ = wa_core::template_lint::lint(&value);
        let _ = wa_core::templates::shape(&value);
    }
});
