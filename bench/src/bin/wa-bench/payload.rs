//! Writes a signed `n`-message webhook body to a file and prints its `X-Hub-Signature-256`:
//! `wa-bench payload N FILE [APP_SECRET]`.

pub fn main(args: &[String]) {
    let n: usize = args[0].parse().unwrap();
    let secret = args.get(2).map_or(wa_bench::APP_SECRET, String::as_str);
    let body = wa_bench::webhook(n);
    std::fs::write(&args[1], &body).unwrap();
    println!("{}", wa_core::signature::sign(secret.as_bytes(), &body));
}
