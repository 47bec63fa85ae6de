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
        "WIN-1",
        "WIN-2",
        "TRACE-1",
        "OPEN-1",
        "CON-1",
        "CON-3",
        "TRACE-2",
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
