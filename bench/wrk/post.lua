-- POSTs one signed webhook body (WA_BENCH_BODY file, WA_BENCH_SIGNATURE header) on every request.
local file = assert(io.open(os.getenv("WA_BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Hub-Signature-256"] = os.getenv("WA_BENCH_SIGNATURE")
