//! A plugin's stderr, keeping the last bytes written. A panic message comes
//! last, after whatever the plugin printed before it, so the tail is what
//! explains a failure; and a chatty plugin must never see its writes fail
//! (Rust's `eprintln!` panics when stderr refuses a write).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The last `keep` bytes written, and how many were written in all.
#[derive(Clone)]
pub struct Tail {
    keep: usize,
    inner: Arc<Mutex<Buffer>>,
}

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    written: u64,
}

impl Tail {
    pub fn new(keep: usize) -> Self {
        Tail {
            keep,
            inner: Arc::default(),
        }
    }

    fn push(&self, data: &[u8]) {
        let mut b = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        b.written += data.len() as u64;
        let data = &data[data.len().saturating_sub(self.keep)..];
        b.bytes.extend_from_slice(data);
        // Trim only when twice the size kept: amortised constant per byte.
        if b.bytes.len() > 2 * self.keep {
            let cut = b.bytes.len() - self.keep;
            b.bytes.drain(..cut);
        }
    }

    /// What was printed, as text: the last bytes, with a word on what was cut.
    pub fn text(&self) -> String {
        let b = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let tail = &b.bytes[b.bytes.len().saturating_sub(self.keep)..];
        let text = String::from_utf8_lossy(tail).trim().to_string();
        let cut = b.written - tail.len() as u64;
        if cut > 0 && !text.is_empty() {
            format!("[{cut} earlier bytes not kept] …{text}")
        } else {
            text
        }
    }
}

impl IsTerminal for Tail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Tail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for Tail {
    async fn ready(&mut self) {}
}

impl OutputStream for Tail {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for Tail {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_kept_and_the_cut_is_counted() {
        let t = Tail::new(8);
        for _ in 0..100 {
            t.push(b"chatter ");
        }
        t.push(b"PANIC!");
        assert_eq!(t.text(), "[798 earlier bytes not kept] …r PANIC!");
    }
}
