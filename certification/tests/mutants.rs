//! The suite can fail: each deliberately broken stand-in gateway is caught by the requirement it
//! violates (and the broken gateway is not certified), while a faithful stand-in passes the same
//! cases, so it is the misbehaviour that is caught and not the stand-in itself.

mod common;

use common::{assert_caught, assert_clean, run_mutant, Mutant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faithful_stand_in_passes_the_cases_the_mutants_fail() {
    let only = [
        "assert-control",
        "assert-alg-none",
        "assert-acr-missing",
        "assert-lifetime-at-max",
        "assert-lifetime-just-over",
        "assert-too-long-lived",
        "assert-on-behalf-of",
        "WIN-1",
        "WIN-2",
        "WIN-3",
        "WIN-4",
        "WIN-5",
        "TRACE-1",
        "OPEN-1",
        "OPEN-4",
        "CON-1",
        "CON-3",
        "CON-5",
        "TRACE-2",
        "TLS-5",
    ];
    let r = run_mutant(Mutant::Faithful, &only).await;
    assert_clean(&r, &only);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_alg_none_is_caught_by_own_1() {
    let r = run_mutant(
        Mutant::AcceptsAlgNone,
        &["assert-control", "assert-alg-none"],
    )
    .await;
    assert_caught(&r, "OWN-1", "assert-alg-none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_bodies_to_disk_is_caught_by_win_2() {
    let r = run_mutant(
        Mutant::WritesBodiesToDisk,
        &["window-no-store", "window-no-canary"],
    )
    .await;
    assert_caught(&r, "WIN-2", "window-no-canary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_identity_codes_is_caught_by_trace_1() {
    let r = run_mutant(
        Mutant::LogsIdentityCodes,
        &["assert-control", "trace-no-identity-code"],
    )
    .await;
    assert_caught(&r, "TRACE-1", "trace-no-identity-code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_no_store_is_caught_by_win_1() {
    let r = run_mutant(Mutant::DropsNoStore, &["WIN-1"]).await;
    assert_caught(&r, "WIN-1", "window-no-store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reporting_an_opening_twice_is_caught_by_open_1() {
    let r = run_mutant(Mutant::ReportsOpeningTwice, &["OPEN-1"]).await;
    assert_caught(&r, "OPEN-1", "openings-exactly-once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_the_consent_check_is_caught_by_con_1_and_con_3() {
    let r = run_mutant(Mutant::SkipsConsent, &["CON-1", "CON-3"]).await;
    assert_caught(&r, "CON-1", "consent-none");
    assert_caught(&r, "CON-3", "consent-recording");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_an_audit_line_is_caught_by_trace_2() {
    let r = run_mutant(Mutant::LosesAuditLine, &["OWN-1", "TRACE-2"]).await;
    assert_caught(&r, "TRACE-2", "audit-trail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_no_store_on_errors_only_is_caught_by_win_3() {
    let r = run_mutant(
        Mutant::DropsNoStoreOnErrors,
        &[
            "assert-control",
            "assert-alg-none",
            "CON-1",
            "OPEN-4",
            "WIN-1",
            "WIN-3",
        ],
    )
    .await;
    assert_caught(&r, "WIN-3", "window-no-store-every-answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opening_recorded_for_head_is_caught_by_open_4() {
    let r = run_mutant(Mutant::OpensOnHead, &["OPEN-4"]).await;
    assert_caught(&r, "OPEN-4", "openings-none-for-head");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_a_missing_acr_is_caught_by_own_5() {
    let r = run_mutant(
        Mutant::AcceptsMissingAcr,
        &["assert-control", "assert-acr-missing"],
    )
    .await;
    assert_caught(&r, "OWN-5", "assert-acr-missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_representation_claims_is_caught_by_own_2() {
    let r = run_mutant(
        Mutant::AcceptsRepresentation,
        &["assert-control", "assert-on-behalf-of"],
    )
    .await;
    assert_caught(&r, "OWN-2", "assert-on-behalf-of");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_ten_hour_assertions_is_caught_at_the_boundary_by_own_4() {
    let r = run_mutant(
        Mutant::AcceptsLongLifetime,
        &[
            "assert-control",
            "assert-lifetime-at-max",
            "assert-lifetime-just-over",
        ],
    )
    .await;
    assert_caught(&r, "OWN-4", "assert-lifetime-just-over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignoring_the_century_sign_is_caught_by_con_5() {
    let r = run_mutant(Mutant::IgnoresCenturySign, &["CON-5"]).await;
    assert_caught(&r, "CON-5", "consent-century-twins");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caching_bodies_base64_encoded_is_caught_by_win_5_not_win_2() {
    let r = run_mutant(Mutant::WritesBase64ToDisk, &["WIN-1", "WIN-2", "WIN-5"]).await;
    assert_caught(&r, "WIN-5", "window-no-encoded-canary");
    // The plain scan cannot see it: this is what the encoded forms are for.
    assert_eq!(
        r.verdict_of("WIN-2"),
        Some(ikkuna_certify::outcome::Verdict::Pass)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_ca_not_enforced_is_caught_by_tls_5() {
    let r = run_mutant(Mutant::ClientCertNotEnforced, &["TLS-5"]).await;
    assert_caught(&r, "TLS-5", "operator-client-cert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooling_attachments_to_unlinked_files_is_caught_by_win_4() {
    let r = run_mutant(Mutant::SpillsAttachments, &["WIN-4"]).await;
    assert_caught(&r, "WIN-4", "window-open-files");
}
