//! Property test of the openings outbox state machine, through its public API on a real SQLite
//! file: random sequences of record / due / mark_delivered / mark_failed / park / requeue are
//! checked after every step against a plain in-memory model.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Utc};
use ikkuna::openings::Outbox;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Record {
        consent: u8,
        message: i64,
    },
    Due,
    Delivered {
        pick: prop::sample::Index,
        first_open: bool,
    },
    Failed {
        pick: prop::sample::Index,
        later: bool,
    },
    Park {
        pick: prop::sample::Index,
    },
    Requeue,
    UnknownId,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, 0i64..5).prop_map(|(consent, message)| Op::Record { consent, message }),
        2 => Just(Op::Due),
        2 => (any::<prop::sample::Index>(), any::<bool>())
            .prop_map(|(pick, first_open)| Op::Delivered { pick, first_open }),
        2 => (any::<prop::sample::Index>(), any::<bool>())
            .prop_map(|(pick, later)| Op::Failed { pick, later }),
        1 => any::<prop::sample::Index>().prop_map(|pick| Op::Park { pick }),
        1 => Just(Op::Requeue),
        1 => Just(Op::UnknownId),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending { deferred: bool },
    Parked,
    Delivered { first_open: bool },
}

#[derive(Default)]
struct Model {
    /// (consent, message) → opening id.
    ids: BTreeMap<(String, i64), String>,
    /// opening id → state, in recording order for picking.
    states: BTreeMap<String, State>,
    order: Vec<String>,
}

impl Model {
    fn pick(&self, pick: &prop::sample::Index) -> Option<String> {
        (!self.order.is_empty()).then(|| pick.get(&self.order).clone())
    }
    fn count(&self, f: impl Fn(&State) -> bool) -> u64 {
        self.states.values().filter(|s| f(s)).count() as u64
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let outbox = Outbox::open(dir.path().join("ikkuna.db"))
        .await
        .expect("outbox opens");
    let mut model = Model::default();
    // "Due" looks a day ahead: fresh and requeued openings are due, deferred ones are not.
    let horizon = || Utc::now() + Duration::days(1);
    for op in ops {
        match op {
            Op::Record { consent, message } => {
                let consent = format!("consent-{consent}");
                let got = outbox
                    .record_opening(&consent, message)
                    .await
                    .expect("record");
                match model.ids.get(&(consent.clone(), message)) {
                    Some(id) => {
                        prop_assert_eq!(&got.opening_id, id, "one opening id per pair");
                        prop_assert!(!got.newly_recorded);
                    }
                    None => {
                        prop_assert!(got.newly_recorded);
                        prop_assert!(
                            !model.states.contains_key(&got.opening_id),
                            "opening ids are unique"
                        );
                        model.ids.insert((consent, message), got.opening_id.clone());
                        model
                            .states
                            .insert(got.opening_id.clone(), State::Pending { deferred: false });
                        model.order.push(got.opening_id);
                    }
                }
            }
            Op::Due => {
                let due: BTreeSet<String> = outbox
                    .due(horizon(), 1000)
                    .await
                    .expect("due")
                    .into_iter()
                    .map(|p| p.opening_id)
                    .collect();
                let expected: BTreeSet<String> = model
                    .states
                    .iter()
                    .filter(|(_, s)| **s == State::Pending { deferred: false })
                    .map(|(id, _)| id.clone())
                    .collect();
                prop_assert_eq!(due, expected);
            }
            Op::Delivered { pick, first_open } => {
                if let Some(id) = model.pick(&pick) {
                    outbox
                        .mark_delivered(&id, first_open, Utc::now())
                        .await
                        .expect("delivered");
                    let state = model.states.get_mut(&id).expect("known");
                    if !matches!(state, State::Delivered { .. }) {
                        *state = State::Delivered { first_open };
                    }
                }
            }
            Op::Failed { pick, later } => {
                if let Some(id) = model.pick(&pick) {
                    let next = if later {
                        Utc::now() + Duration::days(10)
                    } else {
                        Utc::now() - Duration::seconds(1)
                    };
                    outbox
                        .mark_failed(&id, "unavailable", next)
                        .await
                        .expect("failed");
                    let state = model.states.get_mut(&id).expect("known");
                    if let State::Pending { .. } = state {
                        *state = State::Pending { deferred: later };
                    }
                }
            }
            Op::Park { pick } => {
                if let Some(id) = model.pick(&pick) {
                    outbox.park(&id, "refused").await.expect("park");
                    let state = model.states.get_mut(&id).expect("known");
                    if let State::Pending { .. } = state {
                        *state = State::Parked;
                    }
                }
            }
            Op::Requeue => {
                let n = outbox.requeue_parked().await.expect("requeue");
                let parked = model.count(|s| *s == State::Parked);
                prop_assert_eq!(n as u64, parked);
                for s in model.states.values_mut() {
                    if *s == State::Parked {
                        *s = State::Pending { deferred: false };
                    }
                }
            }
            Op::UnknownId => {
                // Unknown ids change nothing, whatever is done to them.
                let id = uuid::Uuid::new_v4().to_string();
                outbox
                    .mark_delivered(&id, true, Utc::now())
                    .await
                    .expect("ok");
                outbox.mark_failed(&id, "x", Utc::now()).await.expect("ok");
                outbox.park(&id, "x").await.expect("ok");
            }
        }
        let stats = outbox.stats().await.expect("stats");
        prop_assert_eq!(
            stats.pending,
            model.count(|s| matches!(s, State::Pending { .. }))
        );
        prop_assert_eq!(stats.parked, model.count(|s| *s == State::Parked));
        prop_assert_eq!(
            stats.delivered,
            model.count(|s| matches!(s, State::Delivered { .. }))
        );
        prop_assert_eq!(
            stats.first_opens,
            model.count(|s| *s == State::Delivered { first_open: true })
        );
        prop_assert_eq!(stats.oldest_pending_age.is_some(), stats.pending > 0);
    }
    // Reopening the file sees the same state (everything was committed).
    drop(outbox);
    let again = Outbox::open(dir.path().join("ikkuna.db"))
        .await
        .expect("reopens");
    let stats = again.stats().await.expect("stats");
    prop_assert_eq!(
        stats.delivered,
        model.count(|s| matches!(s, State::Delivered { .. }))
    );
    prop_assert_eq!(
        stats.pending + stats.parked + stats.delivered,
        model.states.len() as u64
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 40,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn outbox_matches_its_model(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(run(ops))?;
    }
}
