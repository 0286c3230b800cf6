//! Which files a boot script fetches from bootgate: every `/files/<name>`
//! in it, whatever comes before (`kernel /files/x`, `${server_url}/files/x`).
//! Used to tell whether a shared asset is still in use before removing it, and
//! to point out references that resolve to nothing.

use crate::names::is_name_char;

const PREFIX: &str = "/files/";

/// The first path segment after each `/files/` in `script`, each once, in
/// order of appearance. Segments that are not valid names (empty, or starting
/// with `$`) are skipped.
pub fn file_references(script: &str) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    let mut rest = script;
    while let Some(at) = rest.find(PREFIX) {
        rest = &rest[at + PREFIX.len()..];
        let len = rest.find(|c| !is_name_char(c)).unwrap_or(rest.len());
        let name = &rest[..len];
        let valid = name.starts_with(|c: char| c.is_ascii_alphanumeric());
        if valid && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_file_once() {
        let script = "#!ipxe\n\
            kernel /files/linux-arm64-6.5.1 initrd=b2c b2c.run=\"-ti x\"\n\
            initrd --name b2c ${server_url}/files/initramfs.cpio.xz\n\
            fdt /files/bcm2711-rpi-4-b.dtb\n\
            chain /files/linux-arm64-6.5.1 /files/sub/dir /files/ /files/$x /files/.hidden\n";
        assert_eq!(
            file_references(script),
            [
                "linux-arm64-6.5.1",
                "initramfs.cpio.xz",
                "bcm2711-rpi-4-b.dtb",
                "sub"
            ]
        );
        assert!(file_references("kernel /filesystem/x").is_empty());
    }
}
