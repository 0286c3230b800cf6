//! A byte range of a file as a response body, read one TLS record's worth
//! (16 KiB) at a time, so a machine that reads slowly pins about two chunks
//! of memory, not two of a large read size.
//!
//! Small reads must stay cheap for fast clients too: a read goes through the
//! blocking pool (a thread hand-off each time) only when the data is not in
//! the page cache. `preadv2(RWF_NOWAIT)` reads what is cached without ever
//! waiting for the disk, on the runtime thread; when it would wait (`EAGAIN`),
//! or the file system does not support it, the chunk is read on the blocking
//! pool instead. Kernels and initramfs files are read by every machine, so
//! they are nearly always cached.

use std::fs::File;
use std::io::{self, IoSliceMut};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use rustix::io::{Errno, ReadWriteFlags};
use tokio::task::JoinHandle;

/// One TLS record's plaintext: rustls encrypts each chunk as one record.
pub const CHUNK: usize = 16 * 1024;

pub struct FileBody {
    file: Arc<File>,
    offset: u64,
    remaining: u64,
    /// Whether `RWF_NOWAIT` reads are worth trying on this file.
    nowait: bool,
    pending: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileBody {
    /// `len` bytes of `file` from `offset`.
    pub fn new(file: File, offset: u64, len: u64) -> Self {
        Self {
            file: Arc::new(file),
            offset,
            remaining: len,
            nowait: true,
            pending: None,
        }
    }

    fn next_len(&self) -> usize {
        usize::try_from(self.remaining).map_or(CHUNK, |r| r.min(CHUNK))
    }

    /// Reads the next chunk if it is in the page cache; `None` when reading
    /// it would wait for the disk.
    fn read_cached(&mut self) -> Option<io::Result<Bytes>> {
        if !self.nowait {
            return None;
        }
        let mut buf = vec![0; self.next_len()];
        loop {
            let read = rustix::io::preadv2(
                &*self.file,
                &mut [IoSliceMut::new(&mut buf)],
                self.offset,
                ReadWriteFlags::NOWAIT,
            );
            return match read {
                Ok(n) => {
                    buf.truncate(n);
                    Some(Ok(Bytes::from(buf)))
                }
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => None,
                Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => {
                    self.nowait = false;
                    None
                }
                Err(err) => Some(Err(err.into())),
            };
        }
    }

    fn read_on_blocking_pool(&self) -> JoinHandle<io::Result<Bytes>> {
        let (file, offset, len) = (self.file.clone(), self.offset, self.next_len());
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0; len];
            let n = file.read_at(&mut buf, offset)?;
            buf.truncate(n);
            Ok(Bytes::from(buf))
        })
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let read = match this.pending.as_mut() {
            Some(task) => {
                let joined = ready!(Pin::new(task).poll(cx));
                this.pending = None;
                joined.unwrap_or_else(|e| Err(io::Error::other(e)))
            }
            None => match this.read_cached() {
                Some(read) => read,
                None => {
                    this.pending = Some(this.read_on_blocking_pool());
                    return Pin::new(this).poll_frame(cx);
                }
            },
        };
        let chunk = read?;
        if chunk.is_empty() {
            // The file shrank after its length went out in Content-Length.
            return Poll::Ready(Some(Err(io::ErrorKind::UnexpectedEof.into())));
        }
        this.offset += chunk.len() as u64;
        this.remaining -= chunk.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn collect(body: FileBody) -> io::Result<Vec<u8>> {
        Ok(body.collect().await?.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn reads_ranges_in_chunks() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let open = || File::open(&path).unwrap();

        assert_eq!(
            collect(FileBody::new(open(), 0, 100_000)).await.unwrap(),
            data
        );
        assert_eq!(
            collect(FileBody::new(open(), 40_000, 30_000))
                .await
                .unwrap(),
            &data[40_000..70_000]
        );
        assert!(
            collect(FileBody::new(open(), 0, 0))
                .await
                .unwrap()
                .is_empty()
        );

        let mut body = FileBody::new(open(), 0, 100_000);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.len(), CHUNK);

        // Without RWF_NOWAIT every chunk comes from the blocking pool.
        let mut body = FileBody::new(open(), 5, 50_000);
        body.nowait = false;
        assert_eq!(collect(body).await.unwrap(), &data[5..50_005]);
    }

    #[tokio::test]
    async fn a_file_that_shrank_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        std::fs::write(&path, vec![1u8; 1000]).unwrap();
        let body = FileBody::new(File::open(&path).unwrap(), 0, 5000);
        let err = collect(body).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
