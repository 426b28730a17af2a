//! Skeen's rules on their own: what a leader decides from its state and its peers'.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::core::termination::{Verdict, decide};

fn replies(states: &[(u32, TxnState)]) -> BTreeMap<NodeId, TxnState> {
    states
        .iter()
        .map(|(id, state)| (NodeId(*id), *state))
        .collect()
}

fn nodes(ids: &[u32]) -> BTreeSet<NodeId> {
    ids.iter().map(|id| NodeId(*id)).collect()
}

#[test]
fn decide_follows_skeens_rules() {
    use TxnState::{Aborted, Committed, PreCommitted, Waiting};
    let none = BTreeSet::new();
    assert_eq!(
        decide(Waiting, &replies(&[(2, Committed), (3, Waiting)]), &none),
        Verdict::Commit
    );
    assert_eq!(
        decide(PreCommitted, &replies(&[(2, Aborted)]), &none),
        Verdict::Abort {
            reason: "termination protocol: participant 2 had aborted".to_string()
        }
    );
    assert_eq!(
        decide(
            Waiting,
            &replies(&[(2, Waiting), (3, PreCommitted), (4, Waiting)]),
            &none
        ),
        Verdict::PreCommitFirst(nodes(&[2, 4]))
    );
    assert_eq!(
        decide(PreCommitted, &replies(&[(2, PreCommitted)]), &none),
        Verdict::Commit
    );
    assert_eq!(decide(PreCommitted, &replies(&[]), &none), Verdict::Commit);
    assert_eq!(
        decide(Waiting, &replies(&[(2, Waiting)]), &none),
        Verdict::Abort {
            reason: "termination protocol: every operational participant was waiting".to_string()
        }
    );
}

#[test]
fn decide_takes_no_evidence_from_recovered_peers_but_precommits_them() {
    use TxnState::{Aborted, Committed, PreCommitted, Waiting};
    let all_waiting = Verdict::Abort {
        reason: "termination protocol: every operational participant was waiting".to_string(),
    };
    // A recovered peer's `precommitted` may predate an abort taken while it was down.
    assert_eq!(
        decide(
            Waiting,
            &replies(&[(2, PreCommitted), (3, Waiting)]),
            &nodes(&[2])
        ),
        all_waiting
    );
    // An operational one's is evidence; the recovered waiting peer is precommitted too.
    assert_eq!(
        decide(
            Waiting,
            &replies(&[(2, Waiting), (3, PreCommitted)]),
            &nodes(&[2])
        ),
        Verdict::PreCommitFirst(nodes(&[2]))
    );
    assert_eq!(
        decide(PreCommitted, &replies(&[(2, Waiting)]), &nodes(&[2])),
        Verdict::PreCommitFirst(nodes(&[2]))
    );
    // Decided states are final whoever tells them.
    assert_eq!(
        decide(Waiting, &replies(&[(2, Committed)]), &nodes(&[2])),
        Verdict::Commit
    );
    assert_eq!(
        decide(PreCommitted, &replies(&[(2, Aborted)]), &nodes(&[2])),
        Verdict::Abort {
            reason: "termination protocol: participant 2 had aborted".to_string()
        }
    );
}
