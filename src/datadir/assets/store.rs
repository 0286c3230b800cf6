//! Content-addressed storage of asset bytes: `assets/sha256/<hex>`, each
//! content stored once whatever names point at it.
//!
//! Adding streams: the source is read with one fixed buffer, hashed while it
//! is copied to a temporary file beside the blobs, flushed to disk, read back
//! and hashed again, and only then renamed to its hash. Memory stays flat for
//! a 1 GiB initramfs, and a crash leaves either no blob or a complete one.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::fsutil;

/// Size of the one buffer an asset is copied through.
pub const COPY_BUFFER: usize = 256 * 1024;

/// Blobs are never modified in place: read-only for the owner and its group.
const BLOB_MODE: u32 = 0o440;

/// A SHA-256 digest as 64 lowercase hex digits, the name of a blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl FromStr for Digest {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("{s:?} is not a SHA-256 digest (64 hex digits, as `sha256sum` prints)");
        }
        Ok(Self(s))
    }
}

crate::names::string_newtype!(Digest);

/// Where the blob of `digest` lives.
pub fn blob_path(blobs_dir: &Path, digest: &Digest) -> PathBuf {
    blobs_dir.join(&digest.0)
}

/// Copies `reader` to `writer` through `buf`, hashing what passes; returns
/// the digest and the byte count.
pub fn copy_hashing(
    reader: &mut impl Read,
    writer: &mut impl Write,
    buf: &mut [u8],
) -> io::Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        hasher.update(&buf[..n]);
        writer.write_all(&buf[..n])?;
        total += n as u64;
    }
    Ok((Digest(hex::encode(hasher.finalize())), total))
}

/// Content copied into the store but not yet named by its hash.
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    pub digest: Digest,
    pub size: u64,
}

/// Streams `source` into a temporary file in `blobs_dir`, flushes it and
/// checks that what is on disk hashes as what was read. With `expected`, the
/// content must also have that digest (e.g. one published with a release).
pub fn stage(blobs_dir: &Path, source: &Path, expected: Option<&Digest>) -> Result<Staged> {
    let mut input = File::open(source).with_context(|| format!("opening {}", source.display()))?;
    let meta = input
        .metadata()
        .with_context(|| format!("reading {}", source.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", source.display());
    }
    fsutil::create_dir(blobs_dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".bootgate-tmp-")
        .permissions(std::fs::Permissions::from_mode(BLOB_MODE))
        .tempfile_in(blobs_dir)
        .with_context(|| format!("creating a temporary file in {}", blobs_dir.display()))?;
    // The umask may have taken bits away; set exactly the blob mode.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(BLOB_MODE))
        .with_context(|| format!("setting the mode of {}", tmp.path().display()))?;
    let mut buf = vec![0u8; COPY_BUFFER];
    let (digest, size) = copy_hashing(&mut input, tmp.as_file_mut(), &mut buf)
        .with_context(|| format!("copying {} into {}", source.display(), blobs_dir.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("flushing {}", tmp.path().display()))?;

    if let Some(expected) = expected
        && *expected != digest
    {
        bail!(
            "{} has SHA-256 {digest}, not the expected {expected}: the file is not the one you meant, or it is damaged; nothing was stored",
            source.display()
        );
    }
    let file = tmp.as_file_mut();
    file.seek(SeekFrom::Start(0))?;
    let (stored, stored_size) = copy_hashing(file, &mut io::sink(), &mut buf)
        .with_context(|| format!("reading back {}", tmp.path().display()))?;
    if stored != digest || stored_size != size {
        bail!(
            "the copy of {} in {} does not match what was read (disk full or failing?); nothing was stored",
            source.display(),
            blobs_dir.display()
        );
    }
    Ok(Staged { tmp, digest, size })
}

impl Staged {
    /// Names the content by its hash. Returns false when a blob with that
    /// hash was already there (the copy is dropped: one copy on disk).
    pub fn commit(self, blobs_dir: &Path) -> Result<bool> {
        let target = blob_path(blobs_dir, &self.digest);
        if let Ok(meta) = std::fs::metadata(&target) {
            if meta.len() == self.size {
                return Ok(false);
            }
            // A blob of the wrong size cannot be this content: replace it.
            eprintln!(
                "warning: {} has the wrong size; replacing it",
                target.display()
            );
        }
        self.tmp
            .persist(&target)
            .with_context(|| format!("storing {}", target.display()))?;
        fsutil::sync_dir(blobs_dir);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_through_a_small_buffer() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        let (digest, n) = copy_hashing(&mut &data[..], &mut out, &mut buf).unwrap();
        assert_eq!(n, 10_000);
        assert_eq!(out, data);
        assert_eq!(digest.as_ref(), hex::encode(Sha256::digest(&data)));
        let (empty, n) = copy_hashing(&mut io::empty(), &mut io::sink(), &mut buf).unwrap();
        assert_eq!(n, 0);
        assert_eq!(
            empty.as_ref(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn stages_and_stores_once() {
        let tmp = tempfile::tempdir().unwrap();
        let blobs = tmp.path().join("sha256");
        let source = tmp.path().join("kernel");
        std::fs::write(&source, b"kernel bytes").unwrap();
        let want: Digest = hex::encode(Sha256::digest(b"kernel bytes"))
            .parse()
            .unwrap();

        let staged = stage(&blobs, &source, Some(&want)).unwrap();
        assert_eq!(staged.digest, want);
        assert!(staged.commit(&blobs).unwrap());
        assert!(
            !stage(&blobs, &source, None)
                .unwrap()
                .commit(&blobs)
                .unwrap()
        );
        let entries: Vec<_> = std::fs::read_dir(&blobs).unwrap().collect();
        assert_eq!(entries.len(), 1, "one blob, no temporary left");
        let blob = blob_path(&blobs, &want);
        assert_eq!(std::fs::read(&blob).unwrap(), b"kernel bytes");
        let mode = std::fs::metadata(&blob).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o440);

        let wrong: Digest = "0".repeat(64).parse().unwrap();
        let err = stage(&blobs, &source, Some(&wrong)).err().unwrap();
        assert!(err.to_string().contains("not the expected"), "{err}");
        assert_eq!(std::fs::read_dir(&blobs).unwrap().count(), 1);
        assert!(stage(&blobs, tmp.path(), None).is_err());
        assert!("xyz".parse::<Digest>().is_err());
        assert!("A".repeat(64).parse::<Digest>().is_ok());
    }
}
