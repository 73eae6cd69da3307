//! A large compressed stream decoded on a thread of its own, a few chunks
//! ahead of the thread that parses it.
//!
//! The parsing thread is a scan's busiest, and decoding gzip or zstd on it
//! made a compressed month 35–50% slower to scan than the plain file; here
//! the other core decodes while it parses (the month in gzip: 0.91 of the
//! time, in zstd 0.92). Plain bytes are not read this way: copying them from
//! the page cache on another thread only moved the copy (no faster).
//! Chunks go back to the decoding thread to be filled again, so a long stream
//! allocates (and faults in) a handful of buffers, not one per chunk.

use super::lines::CHUNK;
use std::io::Read;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};

/// Chunks read but not yet taken, at most.
const AHEAD: usize = 3;

/// The parsing side: chunks in stream order, then the end (the reading
/// thread gone) or the error that ended the stream.
pub struct ReadAhead {
    chunks: Receiver<std::io::Result<Vec<u8>>>,
    /// emptied chunks, back to the reading thread
    spent: Sender<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
    ended: bool,
}

impl ReadAhead {
    /// Read `source` on a new thread, a chunk as large as the line reader's
    /// largest read at a time. The thread ends at the stream's end or
    /// error, or as soon as this side is dropped.
    pub fn spawn(mut source: impl Read + Send + 'static) -> std::io::Result<ReadAhead> {
        let (tx, chunks) = sync_channel(AHEAD);
        let (spent, refill) = channel::<Vec<u8>>();
        std::thread::Builder::new()
            .name("tokenhound-read".into())
            .spawn(move || loop {
                let mut chunk = refill.try_recv().unwrap_or_default();
                chunk.resize(CHUNK, 0);
                let read = loop {
                    match source.read(&mut chunk) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        other => break other,
                    }
                };
                let last = !matches!(read, Ok(n) if n > 0);
                let sent = match read {
                    Ok(0) => Ok(()),
                    Ok(n) => {
                        chunk.truncate(n);
                        tx.send(Ok(chunk))
                    }
                    Err(e) => tx.send(Err(e)),
                };
                if last || sent.is_err() {
                    return;
                }
            })?;
        Ok(ReadAhead {
            chunks,
            spent,
            current: Vec::new(),
            at: 0,
            ended: false,
        })
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.at == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            match self.chunks.recv() {
                Ok(Ok(chunk)) => {
                    let spent = std::mem::replace(&mut self.current, chunk);
                    self.at = 0;
                    // the reading thread may have ended: then the chunk just goes
                    let _ = self.spent.send(spent);
                }
                Ok(Err(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                Err(_) => {
                    self.ended = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.current.len() - self.at);
        out[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that gives its bytes a few at a time, then fails.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        fail_at_end: bool,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.at == self.data.len() {
                return if self.fail_at_end {
                    Err(std::io::Error::other("the disk went away"))
                } else {
                    Ok(0)
                };
            }
            let n = out.len().min(7).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn a_stream_read_ahead_gives_every_byte_in_order_then_its_end() {
        let data = bytes(3 * CHUNK + 12_345);
        let source = std::io::Cursor::new(data.clone());
        let mut got = Vec::new();
        ReadAhead::spawn(source)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data);
    }

    #[test]
    fn an_error_comes_after_the_bytes_read_before_it() {
        let data = bytes(1000);
        let source = Trickle {
            data: data.clone(),
            at: 0,
            fail_at_end: true,
        };
        let mut ahead = ReadAhead::spawn(source).unwrap();
        let mut got = Vec::new();
        let err = ahead.read_to_end(&mut got).unwrap_err();
        assert_eq!(err.to_string(), "the disk went away");
        assert!(
            got == data,
            "{} of {} bytes before the error",
            got.len(),
            data.len()
        );
    }

    #[test]
    fn dropping_the_reader_ends_the_reading_thread() {
        let (tx, rx) = std::sync::mpsc::channel();
        /// An endless source that reports, when dropped, that its thread ended.
        struct Endless(Sender<()>);
        impl Read for Endless {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                out.fill(b'x');
                Ok(out.len())
            }
        }
        impl Drop for Endless {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let mut ahead = ReadAhead::spawn(Endless(tx)).unwrap();
        let mut some = [0u8; 10];
        ahead.read_exact(&mut some).unwrap();
        drop(ahead);
        rx.recv()
            .expect("the reading thread ends once its reader is gone");
    }
}
