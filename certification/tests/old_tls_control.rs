//! TLS-1's negative control: a rustls gateway can never accept TLS 1.0/1.1, so the probe is shown
//! able to fail by pointing it at a local `openssl s_server` that still offers them.

use ikkuna_certify::cases::transport::{probe_old_tls, OldTls, OldTlsStandIn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_1_probe_sees_an_old_tls_stand_in_accept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stand_in = OldTlsStandIn::start(dir.path())
        .await
        .expect("openssl s_server starts");
    let mut log = Vec::new();
    let seen = probe_old_tls(&stand_in.hostport, None, &mut log).await;
    assert!(
        matches!(&seen, OldTls::Accepted(v) if v.contains(&"TLS 1.0")),
        "the probe must see TLS 1.0 accepted by the stand-in: {seen:?}\n{log:#?}"
    );
}
