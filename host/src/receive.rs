//! The live OTLP receiver (`watch --listen`, `--grpc`): an SDK or an OTel
//! Collector exports straight to tokenhound over OTLP/HTTP (`POST /v1/traces`,
//! protobuf or JSON, gzip or not) or OTLP/gRPC.
//!
//! Nothing acknowledged is lost: every request is appended to a spool file in
//! the watched directory, as one OTLP JSON line, and synced to disk before the
//! reply. The watch follows the spool like any other file, so received spans go
//! through the same pipeline, and a restart after kill -9 replays them like any
//! other file. The spool may be moved aside (rotated) while the receiver runs:
//! the next request starts a new one. When the watch falls behind (more than
//! `max_pending` bytes of the spool not read yet) a request is refused as OTLP
//! says, to be retried: HTTP 429 with `Retry-After`, gRPC `RESOURCE_EXHAUSTED`.

use anyhow::Context as _;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The spool's name in the watched directory.
pub const SPOOL: &str = "tokenhound-received.jsonl";

/// Seconds an exporter is asked to wait before retrying a refused request.
const RETRY_AFTER_SECS: u64 = 1;

/// Where received spans go, and how far the watch has read them.
pub struct Spool {
    path: PathBuf,
    file: Mutex<std::fs::File>,
    /// bytes of it the watch has read (set by the watch)
    pub read: Arc<AtomicU64>,
    max_pending: u64,
}

/// Why a request was not accepted.
pub enum Refusal {
    /// the watch is behind: retry later
    Busy,
    /// not OTLP traces: do not retry
    Bad(String),
    /// the spool could not be written: retry later
    Io(std::io::Error),
}

impl Spool {
    /// Open (or continue) the spool in `dir`.
    pub fn open(dir: &Path, max_pending: u64) -> anyhow::Result<Arc<Self>> {
        let path = dir.join(SPOOL);
        let file = open_append(&path)
            .with_context(|| format!("{}: cannot open the receiver's spool", path.display()))?;
        Ok(Arc::new(Spool {
            path,
            file: Mutex::new(file),
            read: Arc::new(AtomicU64::new(0)),
            max_pending,
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one request as an OTLP JSON line, synced before returning.
    fn append(&self, mut line: Vec<u8>) -> Result<(), Refusal> {
        // Checked under the lock: requests arriving together must not all see
        // the spool as it was before any of them was written.
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if moved(&self.path, &f) {
            *f = open_append(&self.path).map_err(Refusal::Io)?;
        }
        // Only appended to, under this lock: its length is what was written.
        let written = f.metadata().map_err(Refusal::Io)?.len();
        let pending = written.saturating_sub(self.read.load(Ordering::Acquire));
        if pending > self.max_pending {
            return Err(Refusal::Busy);
        }
        line.push(b'\n');
        f.write_all(&line)
            .and_then(|_| f.sync_data())
            .map_err(Refusal::Io)
    }

    /// A decoded request, spooled.
    fn accept(&self, req: &ExportTraceServiceRequest) -> Result<(), Refusal> {
        let line = serde_json::to_vec(req).map_err(|e| Refusal::Bad(e.to_string()))?;
        self.append(line)
    }

    /// An OTLP/HTTP body, spooled: protobuf decoded, JSON checked and compacted
    /// to one line.
    fn accept_body(&self, protobuf: bool, body: &[u8]) -> Result<(), Refusal> {
        if protobuf {
            let req = <ExportTraceServiceRequest as prost::Message>::decode(body)
                .map_err(|e| Refusal::Bad(format!("not an OTLP protobuf request: {e}")))?;
            return self.accept(&req);
        }
        let v: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| Refusal::Bad(format!("not JSON: {e}")))?;
        if v.get("resourceSpans").is_none() {
            return Err(Refusal::Bad("no resourceSpans".into()));
        }
        self.append(serde_json::to_vec(&v).map_err(|e| Refusal::Bad(e.to_string()))?)
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Whether the spool was moved aside (rotated, archived) or deleted since it
/// was opened: the next request starts a new one at the same path, and the
/// watch, which knows files by content, reads the moved one no further than
/// it had and the new one from its start.
#[cfg(unix)]
fn moved(path: &Path, open: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), open.metadata()) {
        (Ok(now), Ok(was)) => (now.dev(), now.ino()) != (was.dev(), was.ino()),
        (Err(_), _) => true,
        (Ok(_), Err(_)) => false,
    }
}

#[cfg(not(unix))]
fn moved(_: &Path, _: &std::fs::File) -> bool {
    false
}

/// `--listen 4318` is `127.0.0.1:4318`: only this machine, unless told.
pub fn address(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("`{s}`: expected a port (4318) or an address (0.0.0.0:4318)"))
}

/// The running receiver; dropping it does not stop it (the process does).
pub struct Receiver {
    pub http: Option<SocketAddr>,
    pub grpc: Option<SocketAddr>,
}

/// Bind and serve on a runtime of its own thread. Binding errors are returned
/// here, before the watch starts.
pub fn start(
    spool: Arc<Spool>,
    http: Option<SocketAddr>,
    grpc: Option<SocketAddr>,
) -> anyhow::Result<Receiver> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .enable_time()
        .thread_name("otlp-receiver")
        .build()
        .context("the receiver's runtime")?;
    let bind = |a: SocketAddr, what: &str| -> anyhow::Result<std::net::TcpListener> {
        let l = std::net::TcpListener::bind(a)
            .with_context(|| format!("{what} on {a}: cannot listen"))?;
        l.set_nonblocking(true)?;
        Ok(l)
    };
    let http_l = http.map(|a| bind(a, "OTLP/HTTP")).transpose()?;
    let grpc_l = grpc.map(|a| bind(a, "OTLP/gRPC")).transpose()?;
    let out = Receiver {
        http: http_l.as_ref().map(|l| l.local_addr()).transpose()?,
        grpc: grpc_l.as_ref().map(|l| l.local_addr()).transpose()?,
    };
    std::thread::Builder::new()
        .name("otlp-receiver".into())
        .spawn(move || {
            rt.block_on(async move {
                let mut tasks = Vec::new();
                if let Some(l) = http_l {
                    tasks.push(tokio::spawn(serve_http(l, spool.clone())));
                }
                if let Some(l) = grpc_l {
                    tasks.push(tokio::spawn(serve_grpc(l, spool.clone())));
                }
                for t in tasks {
                    if let Ok(Err(e)) = t.await {
                        eprintln!("tokenhound: receiver stopped: {e:#}");
                    }
                }
            })
        })?;
    Ok(out)
}

async fn serve_http(l: std::net::TcpListener, spool: Arc<Spool>) -> anyhow::Result<()> {
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(http_traces))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        .with_state(spool);
    axum::serve(tokio::net::TcpListener::from_std(l)?, app).await?;
    Ok(())
}

/// `POST /v1/traces`: protobuf or JSON by content type, gzip by content encoding;
/// the reply is an `ExportTraceServiceResponse` in the request's encoding.
async fn http_traces(
    axum::extract::State(spool): axum::extract::State<Arc<Spool>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let head = |k: header::HeaderName| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let protobuf = head(header::CONTENT_TYPE).starts_with("application/x-protobuf");
    let json = head(header::CONTENT_TYPE).starts_with("application/json");
    if !protobuf && !json {
        let why = "Content-Type must be application/x-protobuf or application/json";
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, why).into_response();
    }
    let body = match head(header::CONTENT_ENCODING).as_str() {
        "gzip" => match gunzip(&body) {
            Ok(b) => b,
            Err(e) => return (StatusCode::BAD_REQUEST, format!("bad gzip: {e}")).into_response(),
        },
        "" | "identity" => body.to_vec(),
        other => {
            let why = format!("Content-Encoding {other} is not supported (gzip is)");
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, why).into_response();
        }
    };
    let done = tokio::task::spawn_blocking(move || spool.accept_body(protobuf, &body)).await;
    let retry = [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())];
    match done {
        Ok(Ok(())) if protobuf => {
            let ok = prost::Message::encode_to_vec(&ExportTraceServiceResponse::default());
            ([(header::CONTENT_TYPE, "application/x-protobuf")], ok).into_response()
        }
        Ok(Ok(())) => ([(header::CONTENT_TYPE, "application/json")], "{}").into_response(),
        Ok(Err(Refusal::Busy)) => {
            (StatusCode::TOO_MANY_REQUESTS, retry, "tokenhound is behind").into_response()
        }
        Ok(Err(Refusal::Bad(why))) => (StatusCode::BAD_REQUEST, why).into_response(),
        Ok(Err(Refusal::Io(e))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            retry,
            format!("spool: {e}"),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn gunzip(b: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(b), &mut out)?;
    Ok(out)
}

struct Grpc(Arc<Spool>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spool = self.0.clone();
        let req = request.into_inner();
        let done = tokio::task::spawn_blocking(move || spool.accept(&req))
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        match done {
            Ok(()) => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
            Err(Refusal::Busy) => Err(tonic::Status::resource_exhausted("tokenhound is behind")),
            Err(Refusal::Bad(why)) => Err(tonic::Status::invalid_argument(why)),
            Err(Refusal::Io(e)) => Err(tonic::Status::unavailable(format!("spool: {e}"))),
        }
    }
}

async fn serve_grpc(l: std::net::TcpListener, spool: Arc<Spool>) -> anyhow::Result<()> {
    let svc = TraceServiceServer::new(Grpc(spool))
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(64 << 20);
    let incoming =
        tokio_stream::wrappers::TcpListenerStream::new(tokio::net::TcpListener::from_std(l)?);
    tonic::transport::Server::builder()
        .add_service(svc)
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
