//! A function binary run as Lambda runs it: a process polling a small Lambda Runtime API emulator
//! on loopback, kept warm across invocations, and killed (SIGKILL) when the run's plan says so:
//! when it posts its answer (after its work, before the caller sees the answer), at its n-th AWS
//! call (before or after that call reaches AWS, see [`super::proxy`]), or at the invocation's
//! timeout, as Lambda does. A killed process is started again (a cold start) at the next
//! invocation, with a new emulator, so nothing of the dead process reaches the new one.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::sync::{mpsc, oneshot};

/// When to kill the process during an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// Let it finish.
    Never,
    /// When it posts its answer: its work is done, the caller never sees the answer.
    AtAnswer,
    /// At its `nth` AWS call of the invocation (1-based): before the call reaches AWS, or after
    /// AWS has done it but before the process reads the answer.
    AtCall {
        /// Which call.
        nth: u32,
        /// Let the call reach AWS first.
        after_forward: bool,
        /// Count only calls of this operation (`AmazonSQS.SendMessageBatch`, ...); all when `None`.
        op: Option<&'static str>,
    },
}

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The function's answer.
    Ok(String),
    /// The function reported an error (`/invocation/{id}/error`).
    Error(String),
    /// The process was killed (or died) before answering: why.
    Killed(&'static str),
}

/// What the AWS proxy does with one call of this function's process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallAction {
    /// Forward it.
    Forward,
    /// Kill the process instead of forwarding it.
    KillBefore,
    /// Forward it, then kill the process.
    KillAfter,
}

struct Invocation {
    id: String,
    event: String,
    deadline_ms: u64,
}

#[derive(Default)]
struct Process {
    child: Option<Child>,
    server: Option<tokio::task::JoinHandle<()>>,
    invocations: Option<mpsc::Sender<Invocation>>,
}

struct Inner {
    name: String,
    binary: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    process: Mutex<Process>,
    answer: Mutex<Option<oneshot::Sender<Answer>>>,
    kill_at_answer: Mutex<bool>,
    kill_at_call: Mutex<Option<(u32, bool, Option<&'static str>)>>,
    /// One invocation at a time, as in a Lambda execution environment.
    busy: tokio::sync::Mutex<()>,
    sequence: AtomicU64,
    kills: AtomicU64,
    starts: AtomicU64,
    /// When the runtime took the invocation in flight (`/next`), for its billed duration.
    taken_at: Mutex<Option<Instant>>,
    /// Each answered invocation's duration, from `/next` to its answer, in microseconds: what
    /// Lambda bills (rounded up to the millisecond).
    durations_us: Mutex<Vec<u64>>,
}

/// One function instance (one process at a time, one invocation at a time, as a Lambda
/// execution environment).
#[derive(Clone)]
pub struct Function {
    inner: Arc<Inner>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Function {
    /// A function running `binary` with `env` (besides the Lambda runtime's own variables); its
    /// standard output and error (the JSON logs and metrics) are appended to `log`.
    #[must_use]
    pub fn new(name: &str, binary: PathBuf, env: Vec<(String, String)>, log: PathBuf) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                binary,
                env,
                log,
                process: Mutex::new(Process::default()),
                answer: Mutex::new(None),
                kill_at_answer: Mutex::new(false),
                kill_at_call: Mutex::new(None),
                busy: tokio::sync::Mutex::new(()),
                sequence: AtomicU64::new(0),
                kills: AtomicU64::new(0),
                starts: AtomicU64::new(0),
                taken_at: Mutex::new(None),
                durations_us: Mutex::new(Vec::new()),
            }),
        }
    }

    /// How many times the process was killed.
    #[must_use]
    pub fn kills(&self) -> u64 {
        self.inner.kills.load(Ordering::SeqCst)
    }

    /// How many processes were started (cold starts).
    #[must_use]
    pub fn starts(&self) -> u64 {
        self.inner.starts.load(Ordering::SeqCst)
    }

    /// Where the process's output goes.
    #[must_use]
    pub fn log(&self) -> &std::path::Path {
        &self.inner.log
    }

    /// The answered invocations' durations (µs), from the runtime taking the event to its answer.
    #[must_use]
    pub fn durations_us(&self) -> Vec<u64> {
        lock(&self.inner.durations_us).clone()
    }

    /// Invokes the function with `event`; the invocation's deadline is `timeout` from now, and the
    /// process is killed when it has not answered by then.
    pub async fn invoke(&self, event: String, kill: Kill, timeout: Duration) -> Answer {
        let _one_at_a_time = self.inner.busy.lock().await;
        let sender = match self.ensure_running().await {
            Ok(sender) => sender,
            Err(error) => return Answer::Error(error),
        };
        let (tx, mut rx) = oneshot::channel();
        *lock(&self.inner.answer) = Some(tx);
        *lock(&self.inner.kill_at_answer) = kill == Kill::AtAnswer;
        *lock(&self.inner.kill_at_call) = match kill {
            Kill::AtCall { nth, after_forward, op } => Some((nth.max(1), after_forward, op)),
            _ => None,
        };
        let id = format!("{}-{}", self.inner.name, self.inner.sequence.fetch_add(1, Ordering::SeqCst));
        let deadline_ms = now_ms() + u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        if sender.send(Invocation { id, event, deadline_ms }).await.is_err() {
            self.kill_now("the runtime emulator stopped");
        }
        let until = Instant::now() + timeout;
        let answer = loop {
            tokio::select! {
                answer = &mut rx => break answer.unwrap_or(Answer::Killed("no answer")),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            if self.exited() {
                self.kill_now("the process exited");
            } else if Instant::now() >= until {
                // Lambda stops an invocation at its timeout.
                self.kill_now("timeout");
            }
        };
        *lock(&self.inner.kill_at_call) = None;
        *lock(&self.inner.kill_at_answer) = false;
        answer
    }

    /// The proxy asks what to do with one AWS call (`op`) of this function.
    #[must_use]
    pub fn on_aws_call(&self, op: &str) -> CallAction {
        let mut armed = lock(&self.inner.kill_at_call);
        match armed.as_mut() {
            Some((_, _, Some(only))) if *only != op => CallAction::Forward,
            Some((1, after, _)) => {
                let action = if *after { CallAction::KillAfter } else { CallAction::KillBefore };
                *armed = None;
                action
            }
            Some((n, _, _)) => {
                *n -= 1;
                CallAction::Forward
            }
            None => CallAction::Forward,
        }
    }

    /// Kills the process now (SIGKILL); the invocation in flight ends as [`Answer::Killed`].
    pub fn kill_now(&self, why: &'static str) {
        let mut process = lock(&self.inner.process);
        if let Some(mut child) = process.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.inner.kills.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(server) = process.server.take() {
            server.abort();
        }
        process.invocations = None;
        drop(process);
        if let Some(answer) = lock(&self.inner.answer).take() {
            let _ = answer.send(Answer::Killed(why));
        }
    }

    /// Stops the process for good (end of a run).
    pub fn stop(&self) {
        let mut process = lock(&self.inner.process);
        if let Some(mut child) = process.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(server) = process.server.take() {
            server.abort();
        }
        process.invocations = None;
    }

    fn exited(&self) -> bool {
        let mut process = lock(&self.inner.process);
        process.child.as_mut().is_some_and(|c| !matches!(c.try_wait(), Ok(None)))
    }

    async fn ensure_running(&self) -> Result<mpsc::Sender<Invocation>, String> {
        if let Some(sender) = {
            let mut process = lock(&self.inner.process);
            let alive = process.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)));
            if alive { process.invocations.clone() } else { None }
        } {
            return Ok(sender);
        }
        self.stop();
        let (sender, receiver) = mpsc::channel(1);
        let state = Arc::new(RuntimeState { function: self.clone(), invocations: tokio::sync::Mutex::new(receiver) });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let address = listener.local_addr().map_err(|e| e.to_string())?.to_string();
        let app = axum::Router::new().fallback(runtime_api).with_state(state);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.inner.log)
            .map_err(|e| format!("{}: {e}", self.inner.log.display()))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(&self.inner.binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TZ", ":UTC")
            .env("AWS_LAMBDA_RUNTIME_API", &address)
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.inner.name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", &self.inner.name)
            .env("AWS_LAMBDA_LOG_GROUP_NAME", &self.inner.name)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("RUST_LOG", "warn")
            .envs(self.inner.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.inner.binary.display()))?;
        self.inner.starts.fetch_add(1, Ordering::SeqCst);
        let mut process = lock(&self.inner.process);
        *process = Process { child: Some(child), server: Some(server), invocations: Some(sender.clone()) };
        Ok(sender)
    }
}

struct RuntimeState {
    function: Function,
    invocations: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
}

/// The Runtime API: `GET /2018-06-01/runtime/invocation/next`, `POST .../{id}/response`,
/// `POST .../{id}/error`, `POST .../init/error`.
async fn runtime_api(State(state): State<Arc<RuntimeState>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = uri.path();
    if method == Method::GET && path.ends_with("/invocation/next") {
        let next = state.invocations.lock().await.recv().await;
        let Some(invocation) = next else { return StatusCode::GONE.into_response() };
        *lock(&state.function.inner.taken_at) = Some(Instant::now());
        return Response::builder()
            .status(200)
            .header("lambda-runtime-aws-request-id", invocation.id)
            .header("lambda-runtime-deadline-ms", invocation.deadline_ms.to_string())
            .header("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:000000000000:function:faults")
            .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(invocation.event))
            .unwrap_or_default();
    }
    let function = &state.function;
    if let Some(taken) = lock(&function.inner.taken_at).take() {
        let us = u64::try_from(taken.elapsed().as_micros()).unwrap_or(u64::MAX);
        lock(&function.inner.durations_us).push(us);
    }
    if path.ends_with("/response") {
        if std::mem::take(&mut *lock(&function.inner.kill_at_answer)) {
            function.kill_now("killed after its work, before its answer");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        if let Some(answer) = lock(&function.inner.answer).take() {
            let _ = answer.send(Answer::Ok(String::from_utf8_lossy(&body).into_owned()));
        }
    } else if let Some(answer) = lock(&function.inner.answer).take() {
        let _ = answer.send(Answer::Error(format!("{path}: {}", String::from_utf8_lossy(&body))));
    }
    StatusCode::ACCEPTED.into_response()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
