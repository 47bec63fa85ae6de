//! SHA-256 of data the gateway hashes on its request path (the remembered signature's key, the
//! audit chain's line hash, the operator client's certificate), in one place: aws-lc-rs'
//! assembly, which uses the CPU's SHA extensions when present and AVX2/SSSE3 otherwise, where the
//! portable `sha2` would run its generic code (issue 22's profile). `sha2` stays where the `hmac`
//! crate and the hashes of streamed bodies need it.

/// The SHA-256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    // A SHA-256 digest is 32 bytes by definition, so the lengths always match.
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_sha256() {
        assert_eq!(
            hex::encode(super::sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
