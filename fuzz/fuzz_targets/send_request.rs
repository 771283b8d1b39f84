//! Any queue message: parsing, validating and building the Graph body of a SendRequest never
//! panic; a request that validates builds a body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Ok(text) = std::str::from_utf8(body) else { return };
    if let Ok(request) = wa_core::send::SendRequest::from_json(text)
        && request.validate().is_ok()
    {
        let _ = request.graph_body(false);
        let _ = wa_core::templates::check_send(&request.message, None, true);
        let _ = wa_core::media::S3Media::of(&request.message);
    }
});
