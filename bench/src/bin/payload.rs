//! Writes a signed `n`-message webhook body to a file and prints its `X-Hub-Signature-256`:
//! `payload N FILE [APP_SECRET]`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args[0].parse().unwrap();
    let secret = args.get(2).map_or(wa_bench::APP_SECRET, String::as_str);
    let body = wa_bench::webhook(n);
    std::fs::write(&args[1], &body).unwrap();
    println!("{}", wa_core::signature::sign(secret.as_bytes(), &body));
}
