//! The `autoexec.ipxe` script baked into every image.
