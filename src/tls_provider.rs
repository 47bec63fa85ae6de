//! The one place the process's TLS crypto provider is chosen (aws-lc-rs, as in linkerd).

/// Installs aws-lc-rs as the process-wide rustls provider; later calls are no-ops.
pub fn install() {
    // Err only means a provider is already installed, which is the state we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
