//! Reads a connection's first TLS record (the ClientHello) to decide which TLS
//! stack answers it, then hands the bytes read back through [`Replay`].
//!
//! A client that offers any suite rustls serves (TLS 1.3, or ECDHE on 1.2) or
//! announces TLS 1.3 goes to rustls. A client that offers none of them, such
//! as an iPXE built before 2024 (RSA or DHE key exchange only), goes to the
//! legacy stack ([`super::legacy_tls`]) when the configuration enables it.
//! Anything that does not parse as a ClientHello goes to rustls, which refuses
//! it exactly as it would have without this look.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

const HANDSHAKE_RECORD: u8 = 0x16;
const CLIENT_HELLO: u8 = 1;
const SUPPORTED_VERSIONS: u16 = 0x002b;
const TLS13: u16 = 0x0304;
/// Largest TLS record payload (2^14) plus what a compressed one may add.
const MAX_RECORD: usize = 16384 + 2048;

/// Implements `AsyncWrite` for a read-side wrapper `$wrapper<S>` (a struct
/// with an `inner: S` stream) by handing every write straight to `inner`.
macro_rules! forward_async_write {
    ($wrapper:ident) => {
        impl<S: ::tokio::io::AsyncWrite + Unpin> ::tokio::io::AsyncWrite for $wrapper<S> {
            fn poll_write(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                buf: &[u8],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_flush(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_shutdown(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::io::Result<()>> {
                ::std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                mut self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
                bufs: &[::std::io::IoSlice<'_>],
            ) -> ::std::task::Poll<::std::io::Result<usize>> {
                ::std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}
pub(super) use forward_async_write;

/// What a ClientHello offers, as far as choosing a stack goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub cipher_suites: Vec<u16>,
    pub tls13: bool,
}

impl Offer {
    /// Whether none of `modern` (the suites rustls serves) is offered and
    /// TLS 1.3 is not announced.
    pub fn is_legacy_only(&self, modern: &[u16]) -> bool {
        !self.tls13 && !self.cipher_suites.iter().any(|s| modern.contains(s))
    }
}

/// Reads the first record of `stream`; returns what was read (to replay) and
/// the offer, if it was a ClientHello whole in that record.
pub async fn read_first_record<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> io::Result<(Vec<u8>, Option<Offer>)> {
    let mut buf = Vec::with_capacity(1024);
    if !fill(stream, &mut buf, 5).await? || buf[0] != HANDSHAKE_RECORD {
        return Ok((buf, None));
    }
    let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    if len > MAX_RECORD || !fill(stream, &mut buf, 5 + len).await? {
        return Ok((buf, None));
    }
    let offer = parse_client_hello(&buf[5..5 + len]);
    Ok((buf, offer))
}

/// Reads until `buf` holds `want` bytes; false if the stream ended first.
async fn fill<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    want: usize,
) -> io::Result<bool> {
    while buf.len() < want {
        let mut chunk = vec![0u8; want - buf.len()];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(false);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(true)
}

/// Parses a ClientHello handshake message (RFC 5246 §7.4.1.2, RFC 8446 §4.1.2).
pub fn parse_client_hello(msg: &[u8]) -> Option<Offer> {
    let mut r = Reader(msg);
    if r.u8()? != CLIENT_HELLO {
        return None;
    }
    let body_len = r.u24()?;
    let mut r = Reader(r.take(body_len)?);
    r.take(2 + 32)?; // legacy_version, random
    let session_len = usize::from(r.u8()?);
    r.take(session_len)?;
    let suites_len = usize::from(r.u16()?);
    let mut suites = Reader(r.take(suites_len)?);
    let mut cipher_suites = Vec::with_capacity(suites_len / 2);
    while !suites.0.is_empty() {
        cipher_suites.push(suites.u16()?);
    }
    let compression_len = usize::from(r.u8()?);
    r.take(compression_len)?;
    let mut tls13 = false;
    if !r.0.is_empty() {
        let ext_len = usize::from(r.u16()?);
        let mut exts = Reader(r.take(ext_len)?);
        while !exts.0.is_empty() {
            let kind = exts.u16()?;
            let len = usize::from(exts.u16()?);
            let data = exts.take(len)?;
            if kind == SUPPORTED_VERSIONS {
                let mut v = Reader(data);
                let n = usize::from(v.u8()?);
                let mut versions = Reader(v.take(n)?);
                while !versions.0.is_empty() {
                    tls13 |= versions.u16()? == TLS13;
                }
            }
        }
    }
    Some(Offer {
        cipher_suites,
        tls13,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some((usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
}

/// A stream that first yields `prefix` (bytes already read from `inner`),
/// then reads on from `inner`; writes go straight to `inner`.
pub struct Replay<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Replay<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.pos);
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            if self.pos == self.prefix.len() {
                self.prefix = Vec::new();
                self.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

forward_async_write!(Replay);

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello with the given suites and, if `versions`, a
    /// supported_versions extension listing them.
    fn hello(suites: &[u16], versions: Option<&[u16]>) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
        for s in suites {
            body.extend_from_slice(&s.to_be_bytes());
        }
        body.extend_from_slice(&[1, 0]);
        let mut exts = vec![0x00, 0x0d, 0x00, 0x02, 0x00, 0x00];
        if let Some(versions) = versions {
            exts.extend_from_slice(&SUPPORTED_VERSIONS.to_be_bytes());
            exts.extend_from_slice(&((versions.len() * 2 + 1) as u16).to_be_bytes());
            exts.push((versions.len() * 2) as u8);
            for v in versions {
                exts.extend_from_slice(&v.to_be_bytes());
            }
        }
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut msg = vec![CLIENT_HELLO];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        let mut record = vec![HANDSHAKE_RECORD, 3, 1];
        record.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        record.extend_from_slice(&msg);
        record
    }

    const MODERN: &[u16] = &[0x1301, 0xc02f];

    #[tokio::test]
    async fn tells_a_2023_ipxe_from_a_modern_client() {
        let ipxe = hello(&[0x009e, 0x0067, 0x002f, 0x0035], None);
        let (read, offer) = read_first_record(&mut &ipxe[..]).await.unwrap();
        assert_eq!(read, ipxe);
        let offer = offer.unwrap();
        assert_eq!(offer.cipher_suites, [0x009e, 0x0067, 0x002f, 0x0035]);
        assert!(offer.is_legacy_only(MODERN));

        let ecdhe = hello(&[0x002f, 0xc02f], None);
        let (_, offer) = read_first_record(&mut &ecdhe[..]).await.unwrap();
        assert!(!offer.unwrap().is_legacy_only(MODERN));

        let tls13 = hello(&[0x002f], Some(&[0x0304, 0x0303]));
        let (_, offer) = read_first_record(&mut &tls13[..]).await.unwrap();
        assert!(!offer.unwrap().is_legacy_only(MODERN));
    }

    #[tokio::test]
    async fn anything_else_is_no_offer_and_is_replayed_whole() {
        let http = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        let (read, offer) = read_first_record(&mut &http[..]).await.unwrap();
        assert!(offer.is_none());
        let mut replay = Replay::new(read, &b""[..]);
        let mut back = Vec::new();
        replay.read_to_end(&mut back).await.unwrap();
        assert!(http.starts_with(&back));

        let mut cut = hello(&[0x002f], None);
        cut.truncate(20);
        let (read, offer) = read_first_record(&mut &cut[..]).await.unwrap();
        assert_eq!((read, offer), (cut, None));
        assert!(parse_client_hello(&[1, 0, 0, 9, 3]).is_none());
    }

    #[tokio::test]
    async fn replay_yields_the_prefix_then_the_rest() {
        let mut replay = Replay::new(b"abc".to_vec(), &b"def"[..]);
        let mut all = String::new();
        replay.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "abcdef");
    }
}
