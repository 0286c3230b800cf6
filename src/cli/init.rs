//! `bootgate init`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::datadir::DataDir;
use crate::manage::init::{self, CaSource, InitOptions, ServerCertSource};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// DNS name or IP address machines use to reach the server (repeatable;
    /// the first one goes into the URL baked into images).
    #[arg(long = "server-name", value_name = "NAME", required = true)]
    server_names: Vec<String>,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// Adopt an existing CA instead of making one (PEM certificate and key,
    /// e.g. ipxe-boot-server's ca_cert/ca.crt and ca_cert/ca.key).
    #[arg(long, num_args = 2, value_names = ["CERT", "KEY"])]
    import_ca: Option<Vec<PathBuf>>,
    /// Use an externally issued server certificate (PEM chain), e.g. Let's Encrypt.
    #[arg(long, requires = "server_key", value_name = "PEM")]
    server_cert: Option<PathBuf>,
    /// Private key of --server-cert.
    #[arg(long, requires = "server_cert", value_name = "PEM")]
    server_key: Option<PathBuf>,
}

pub fn run(dir: &DataDir, args: InitArgs) -> Result<()> {
    let ca = match args.import_ca {
        Some(paths) => CaSource::Import {
            cert: paths[0].clone(),
            key: paths[1].clone(),
        },
        None => CaSource::Generate,
    };
    let server_cert = match (args.server_cert, args.server_key) {
        (Some(cert), Some(key)) => ServerCertSource::External { cert, key },
        _ => ServerCertSource::Issue,
    };
    let opts = InitOptions {
        server_names: args.server_names,
        listen: args.listen,
        ca,
        server_cert,
    };
    let report = init::create(dir.root(), &opts)?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    eprintln!(
        "initialised {} (CA {}, fingerprint {})",
        dir.root().display(),
        report.ca.subject_cn.as_deref().unwrap_or("-"),
        report.ca.fingerprint
    );
    eprintln!("next: bootgate machine add NAME, then bootgate serve");
    Ok(())
}
