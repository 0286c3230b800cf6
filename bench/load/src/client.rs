//! One HTTPS client as a machine would be: TCP, a TLS handshake presenting the
//! client certificate, then HTTP/1.1 requests over hyper's connection API.
//! Everything a worker needs is in [`Target`], built once from the arguments.
//! With `--openssl-ciphers` the handshake is OpenSSL's, TLS 1.2 with exactly
//! those suites: an iPXE built before 2024 (RSA or DHE key exchange).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub type Sender = SendRequest<Empty<Bytes>>;

/// TLS versions the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsVersions {
    /// TLS 1.2 only, as iPXE speaks.
    #[value(name = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[value(name = "1.3")]
    Tls13,
    /// Offer both; the server picks (TLS 1.3 with both servers here).
    #[value(name = "any")]
    Any,
}

/// Client credentials and trust, as PEM files.
pub struct TlsFiles<'a> {
    pub ca: &'a Path,
    pub cert: Option<&'a Path>,
    pub key: Option<&'a Path>,
    pub versions: TlsVersions,
    /// Allow TLS session resumption (off: every connection is a full handshake).
    pub resume: bool,
    /// Handshake with OpenSSL, TLS 1.2, offering only these suites (OpenSSL names).
    pub openssl_ciphers: Option<&'a str>,
}

/// Why a request failed.
#[derive(Debug)]
pub enum Failure {
    Connect(std::io::Error),
    Tls(std::io::Error),
    Http(hyper::Error),
    Status(StatusCode),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect(e) => write!(f, "connect: {e}"),
            Failure::Tls(e) => write!(f, "tls: {e}"),
            Failure::Http(e) => write!(f, "http: {e}"),
            Failure::Status(s) => write!(f, "status {s}"),
        }
    }
}

/// Where to connect and what to ask for; shared by every worker.
pub struct Target {
    pub addr: SocketAddr,
    server_name: ServerName<'static>,
    authority: HeaderValue,
    path: http::uri::PathAndQuery,
    connector: TlsConnector,
    openssl: Option<openssl::ssl::SslConnector>,
    /// Negotiated protocol and cipher suite of the first connection.
    pub negotiated: OnceLock<(String, String)>,
    /// The first few distinct failures, for the report.
    pub examples: Mutex<Vec<String>>,
}

impl Target {
    pub fn new(url: &http::Uri, server_name: Option<&str>, tls: &TlsFiles<'_>) -> Result<Self> {
        if url.scheme_str() != Some("https") {
            bail!("{url}: only https:// URLs are supported");
        }
        let host = url.host().context("the URL has no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = url.port_u16().unwrap_or(443);
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        let name = server_name.unwrap_or(host).to_string();
        let server_name =
            ServerName::try_from(name.clone()).with_context(|| format!("server name {name:?}"))?;
        let authority = url.authority().context("the URL has no host")?.as_str();
        let path = url
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        Ok(Self {
            addr,
            server_name,
            authority: HeaderValue::from_str(authority).context("the URL's host")?,
            path,
            connector: TlsConnector::from(Arc::new(client_config(tls)?)),
            openssl: tls
                .openssl_ciphers
                .map(|c| openssl_config(tls, c))
                .transpose()?,
            negotiated: OnceLock::new(),
            examples: Mutex::new(Vec::new()),
        })
    }

    pub fn authority(&self) -> &str {
        self.authority.to_str().unwrap_or("")
    }

    /// TCP connect and TLS handshake.
    pub async fn tls_connect(&self) -> Result<TlsStream<TcpStream>, Failure> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(Failure::Connect)?;
        tcp.set_nodelay(true).map_err(Failure::Connect)?;
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(Failure::Tls)?;
        if self.negotiated.get().is_none() {
            let conn = tls.get_ref().1;
            let version = conn
                .protocol_version()
                .map_or("-".into(), |v| format!("{v:?}"));
            let suite = conn
                .negotiated_cipher_suite()
                .map_or("-".into(), |s| format!("{:?}", s.suite()));
            let _ = self.negotiated.set((version, suite));
        }
        Ok(tls)
    }

    /// A new connection ready for HTTP/1.1 requests.
    pub async fn connect(&self) -> Result<Sender, Failure> {
        if let Some(openssl) = &self.openssl {
            let tls = self.openssl_connect(openssl).await?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(Failure::Http)?;
            tokio::spawn(conn);
            return Ok(sender);
        }
        let tls = self.tls_connect().await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(Failure::Http)?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// TCP connect and an OpenSSL TLS 1.2 handshake.
    async fn openssl_connect(
        &self,
        connector: &openssl::ssl::SslConnector,
    ) -> Result<tokio_openssl::SslStream<TcpStream>, Failure> {
        let tls_error = |e: openssl::error::ErrorStack| Failure::Tls(std::io::Error::other(e));
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(Failure::Connect)?;
        tcp.set_nodelay(true).map_err(Failure::Connect)?;
        let name = self.server_name.to_str().into_owned();
        let ssl = connector
            .configure()
            .and_then(|c| c.into_ssl(&name))
            .map_err(tls_error)?;
        let mut tls = tokio_openssl::SslStream::new(ssl, tcp).map_err(tls_error)?;
        std::pin::Pin::new(&mut tls)
            .connect()
            .await
            .map_err(|e| Failure::Tls(std::io::Error::other(e)))?;
        if self.negotiated.get().is_none() {
            let ssl = tls.ssl();
            let suite = ssl
                .current_cipher()
                .and_then(|c| c.standard_name())
                .unwrap_or("-");
            let _ = self
                .negotiated
                .set((ssl.version_str().to_string(), suite.to_string()));
        }
        Ok(tls)
    }

    /// `GET path` on `sender`; adds the body's bytes to `body_bytes` as they
    /// arrive, so a download cut short by the deadline still counts.
    pub async fn get(
        &self,
        sender: &mut Sender,
        close: bool,
        body_bytes: &mut u64,
    ) -> Result<(), Failure> {
        let mut request = Request::get(self.path.as_str())
            .header(header::HOST, self.authority.clone())
            .body(Empty::new())
            .expect("valid request");
        if close {
            request
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let response = sender.send_request(request).await.map_err(Failure::Http)?;
        let status = response.status();
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame.map_err(Failure::Http)?.data_ref() {
                *body_bytes += data.len() as u64;
            }
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure::Status(status))
        }
    }

    /// Remembers a failure's text (the first five distinct ones).
    pub fn note(&self, failure: &Failure) {
        let text = failure.to_string();
        let mut examples = self.examples.lock().expect("examples lock");
        if examples.len() < 5 && !examples.contains(&text) {
            examples.push(text);
        }
    }

    /// Raw `GET` request head for clients that drive the TLS stream themselves.
    pub fn request_head(&self, path: &str) -> String {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: bootgate-load\r\n\r\n",
            self.authority()
        )
    }

    pub fn path(&self) -> &str {
        self.path.as_str()
    }
}

fn client_config(files: &TlsFiles<'_>) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(files.ca)? {
        roots
            .add(cert)
            .with_context(|| format!("adding {} to the trust store", files.ca.display()))?;
    }
    let versions: &[&rustls::SupportedProtocolVersion] = match files.versions {
        TlsVersions::Tls12 => &[&rustls::version::TLS12],
        TlsVersions::Tls13 => &[&rustls::version::TLS13],
        TlsVersions::Any => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .context("selecting TLS versions")?
        .with_root_certificates(roots);
    let mut config = match (files.cert, files.key) {
        (Some(cert), Some(key)) => {
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("reading {}", key.display()))?;
            builder
                .with_client_auth_cert(read_certs(cert)?, key)
                .context("loading the client certificate")?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => bail!("--cert and --key go together"),
    };
    if !files.resume {
        config.resumption = Resumption::disabled();
    }
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn openssl_config(files: &TlsFiles<'_>, ciphers: &str) -> Result<openssl::ssl::SslConnector> {
    use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslSessionCacheMode, SslVersion};
    let mut b = SslConnector::builder(SslMethod::tls_client())?;
    b.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    b.set_max_proto_version(Some(SslVersion::TLS1_2))?;
    b.set_cipher_list(ciphers)
        .with_context(|| format!("OpenSSL knows none of {ciphers:?}"))?;
    b.set_ca_file(files.ca)
        .with_context(|| format!("reading {}", files.ca.display()))?;
    if let (Some(cert), Some(key)) = (files.cert, files.key) {
        b.set_certificate_chain_file(cert)
            .with_context(|| format!("reading {}", cert.display()))?;
        b.set_private_key_file(key, SslFiletype::PEM)
            .with_context(|| format!("reading {}", key.display()))?;
    }
    if !files.resume {
        b.set_session_cache_mode(SslSessionCacheMode::OFF);
    }
    Ok(b.build())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading {}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", path.display());
    }
    Ok(certs)
}
