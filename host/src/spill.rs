//! Records set aside in a temporary file, so that what a scan keeps until its
//! report is written does not have to stay in memory.
//!
//! A scan's findings grow with its input (about 2 KB each in memory, and a
//! month of a busy agent has tens of thousands); held until the report, they
//! were most of the peak memory of a large input, and ten months took ten
//! times the memory. Past a few thousand, they are written here instead, and
//! read back once, when the report is built or written. The file has no name
//! (`tempfile::tempfile`): the system removes it when the scan ends, however it
//! ends.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

/// An append-only file of byte records, each with its length before it.
pub struct Spill {
    out: BufWriter<File>,
    /// bytes written so far (the next record's place)
    end: u64,
    records: usize,
}

/// Where a record is: its bytes' offset and length.
#[derive(Clone, Copy, Debug)]
pub struct At {
    pub offset: u64,
    pub len: u32,
}

impl At {
    /// Its bytes within [`Spill::whole`].
    pub fn range(self) -> std::ops::Range<usize> {
        self.offset as usize..self.offset as usize + self.len as usize
    }
}

impl Spill {
    /// A new, empty spill file in the system's temporary folder (`TMPDIR`).
    pub fn new() -> io::Result<Self> {
        let file = tempfile::tempfile().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot create a temporary file in {} to set findings aside: {e} (set TMPDIR to a writable folder)",
                    std::env::temp_dir().display()
                ),
            )
        })?;
        Ok(Spill {
            out: BufWriter::with_capacity(1 << 16, file),
            end: 0,
            records: 0,
        })
    }

    /// Append one record.
    pub fn push(&mut self, bytes: &[u8]) -> io::Result<At> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| io::Error::other("a record of 4 GiB or more cannot be set aside"))?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(bytes)?;
        let at = At {
            offset: self.end + 4,
            len,
        };
        self.end += 4 + u64::from(len);
        self.records += 1;
        Ok(at)
    }

    pub fn len(&self) -> usize {
        self.records
    }

    /// Write out what is buffered, so [`Spill::read`] sees every record.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// A record written before the last [`Spill::flush`].
    pub fn read(&self, at: At) -> io::Result<Vec<u8>> {
        let mut bytes = vec![0u8; at.len as usize];
        read_exact_at(self.out.get_ref(), &mut bytes, at.offset)?;
        Ok(bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Every byte written before the last [`Spill::flush`], mapped, if they
    /// are at most `limit`: records read back in an order of their own (a
    /// report's, largest first) were one read each, and read into a buffer in
    /// one, the month's 42 MB were faulted in and copied before being written
    /// out (writing its report took 0.035 s that way, 0.011 s mapped).
    pub fn whole(&self, limit: u64) -> io::Result<Option<memmap2::Mmap>> {
        if self.end > limit || self.end == 0 {
            return Ok(None);
        }
        // SAFETY: the file has no name (`tempfile::tempfile`) and this spill
        // only appends to it: nothing truncates it while it is mapped.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .len(self.end as usize)
                .map(self.out.get_ref())?
        };
        Ok(Some(map))
    }

    /// Every record, in the order written.
    pub fn drain(mut self) -> io::Result<Records> {
        self.out.flush()?;
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        Ok(Records {
            input: BufReader::with_capacity(1 << 16, file),
            left: self.records,
        })
    }
}

/// The records of [`Spill::drain`], in order.
pub struct Records {
    input: BufReader<File>,
    left: usize,
}

impl Iterator for Records {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let mut len = [0u8; 4];
        let read = self.input.read_exact(&mut len).and_then(|_| {
            let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
            self.input.read_exact(&mut bytes).map(|_| bytes)
        });
        Some(read)
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order_and_by_place() {
        let mut s = Spill::new().unwrap();
        let places: Vec<At> = (0..1000u32)
            .map(|i| s.push(&vec![i as u8; i as usize % 300]).unwrap())
            .collect();
        assert_eq!(s.len(), 1000);
        s.flush().unwrap();
        assert_eq!(
            s.read(places[777]).unwrap(),
            vec![(777 % 256) as u8; 777 % 300]
        );
        let mut s = Spill::new().unwrap();
        for i in 0..1000u32 {
            s.push(&vec![i as u8; i as usize % 300]).unwrap();
        }
        let back: Vec<Vec<u8>> = s.drain().unwrap().map(Result::unwrap).collect();
        assert_eq!(back.len(), 1000);
        assert!(back
            .iter()
            .enumerate()
            .all(|(i, r)| *r == vec![i as u8; i % 300]));
    }
}
