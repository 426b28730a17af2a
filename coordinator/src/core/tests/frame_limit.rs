//! Each participant's frame limit: a transaction whose Prepare would not fit it is
//! rejected at submit with a reason; others, and other participants, are not affected.

use expect_test::expect;

use super::*;
use crate::core::SendFailure;

fn frame_limit(peer: u32, bytes: usize) -> Input {
    Input::PeerFrameLimit {
        peer: n(peer),
        bytes,
    }
}

fn put(key: &str, bytes: usize) -> Op {
    Op::Put {
        key: key.into(),
        value: Value::Text("v".repeat(bytes)),
    }
}

/// What one submit produced, shortly: `rejected: REASON` or the participants sent to.
fn outcome(core: &mut Coordinator, txn: u128, spec: TxnSpec) -> String {
    core.handle(Millis(0), submit(txn, spec));
    let outputs = drain(core);
    match &outputs[..] {
        [
            Output::ClientResult {
                result: TxnResult::Rejected { reason },
                ..
            },
        ] => format!("rejected: {reason}"),
        sends => {
            let to: Vec<String> = sends
                .iter()
                .map(|output| match output {
                    Output::Send { to, .. } => format!("prepare to {to}"),
                    other => panic!("unexpected {other:?}"),
                })
                .collect();
            to.join(", ")
        }
    }
}

#[test]
fn a_prepare_over_its_participants_frame_limit_is_rejected_at_submit() {
    let mut config = Config::new([n(1), n(2), n(3)]);
    config.limits.value_bytes_max = 4_096;
    let mut core = with_config(config);
    core.handle(Millis(0), frame_limit(1, 2_048));
    let text = [
        // 3 KB for participant 1: over its 2 KiB.
        outcome(&mut core, 1, spec(vec![(1, vec![put("k", 3_000)])])),
        // The same to participant 2, whose limit is ours (16 MiB): sent.
        outcome(&mut core, 2, spec(vec![(2, vec![put("k", 3_000)])])),
        // With participant 1 in it too: refused as a whole, naming participant 1.
        outcome(
            &mut core,
            3,
            spec(vec![(2, vec![put("k", 10)]), (1, vec![put("k", 3_000)])]),
        ),
        // Small enough for participant 1.
        outcome(&mut core, 4, spec(vec![(1, vec![put("k", 100)])])),
    ]
    .join("\n");
    expect![[r#"
        rejected: too large for participant 1: its Prepare would be a 3087-byte frame, over that participant's frame limit of 2048 bytes (--frame-bytes-max)
        prepare to 2
        rejected: too large for participant 1: its Prepare would be a 3088-byte frame, over that participant's frame limit of 2048 bytes (--frame-bytes-max)
        prepare to 1"#]].assert_eq(&text);
}

#[test]
fn a_limit_is_never_above_our_own_and_a_too_large_send_aborts_with_its_reason() {
    let mut config = Config::new([n(1), n(2)]);
    config.frame_bytes_max = 1 << 20;
    config.limits.ops_per_txn_max = 10;
    config.limits.value_bytes_max = 60_000;
    let mut core = with_config(config);
    // Participant 1 announces more than we take: our own limit still holds (validate
    // keeps the largest transaction under it, so this one goes out).
    core.handle(Millis(0), frame_limit(1, usize::MAX));
    core.handle(
        Millis(0),
        submit(1, spec(vec![(1, vec![put("k", 50_000)])])),
    );
    assert!(matches!(drain(&mut core)[..], [Output::Send { .. }]));
    // A participant that announced less on a later connection than its Prepare needs:
    // the channel refuses it, and the transaction aborts saying why.
    core.handle(
        Millis(1),
        Input::SendFailed {
            to: n(1),
            txn: txn_id(1),
            failure: SendFailure::TooLarge {
                len: 50_100,
                max: 4_096,
            },
        },
    );
    let outputs = drain(&mut core);
    let text = format!("{outputs:?}");
    assert!(
        text.contains(
            "the Prepare for participant 1 is 50100 bytes, over its frame limit of 4096 bytes"
        ),
        "{text}"
    );
}
