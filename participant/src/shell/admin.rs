//! An operator's requests to a running participant (`participant in-doubt --addr`,
//! `txn ID --addr`, `resolve --addr`): lookups answered from the node's own store, the
//! same rows `--db` reads from the file, each reply bounded in bytes; and resolves handed
//! to the core, which answers once the heuristic record is durable.

use tracing::{debug, error, warn};
use wire::admin::{InDoubtEntry, TxnLookup};
use wire::{Channel, ClientResponse, Decision, Epoch, RequestId, TxnId};

use super::{EventLoop, respond};
use crate::core::ReplyTo;
use crate::core::inbound::{self, Lookup, Needs};

/// The most text a lookup's reply carries (well under any frame limit): past it the
/// in-doubt list, or one txn's operations, are cut and the reply says how many were left
/// out (the file itself, `--db`, has them all).
pub const LOOKUP_REPLY_BYTES_MAX: usize = 512 * 1024;

impl EventLoop {
    /// Answers a lookup from the store (read-only statements on the node's own pool).
    pub(super) async fn on_lookup(&mut self, channel: &Channel, id: RequestId, lookup: Lookup) {
        let msg = match lookup {
            Lookup::InDoubt => match self.store.in_doubt_entries().await {
                Ok(entries) => {
                    let (entries, omitted) = bounded_in_doubt(entries);
                    ClientResponse::InDoubt { entries, omitted }
                }
                Err(error) => lookup_failed(&error),
            },
            Lookup::Txn(txn) => match self.store.lookup(txn).await {
                Ok(lookup) => ClientResponse::Txn {
                    txn,
                    lookup: Box::new(bounded_lookup(lookup)),
                },
                Err(error) => lookup_failed(&error),
            },
        };
        self.io.messages_out += 1;
        if let Err(error) = channel.respond(id, msg) {
            // Too large for the frame limit, or the client went: it hears why, if it can.
            warn!(peer = %channel.peer(), %error, "lookup reply not sent");
            let reason = format!(
                "the reply cannot be sent ({error}); look at the file: participant txn/in-doubt --db"
            );
            respond(channel, id, ClientResponse::Refused { reason }.into());
        }
    }

    /// Reads the txn's stored record if the core needs it, then hands the resolve to the
    /// core (`core/resolve.rs`), which replies through [`EventLoop::client_reply`].
    pub(super) async fn on_resolve(
        &mut self,
        channel: &Channel,
        id: RequestId,
        resolve: (TxnId, Decision, String),
        needs: Needs,
    ) {
        let (txn, decision, note) = resolve;
        let reads = match self.read(&needs).await {
            Ok(reads) => reads,
            Err(error) => {
                error!(%txn, %error, "store read failed");
                let reason = format!(
                    "participant {} cannot read its store: {error}",
                    self.node_id
                );
                respond(channel, id, ClientResponse::Refused { reason }.into());
                return;
            }
        };
        let from = ReplyTo {
            peer: channel.peer(),
            conn: channel.epoch().0,
        };
        let input = inbound::resolve_input(from, id, txn, decision, note, reads);
        let now = self.now();
        self.core.handle(now, input);
    }

    /// The core's answer to an operator (on a client connection).
    pub(super) fn client_reply(&mut self, to: ReplyTo, id: RequestId, msg: ClientResponse) {
        match self.clients.get(&Epoch(to.conn)) {
            Some(channel) => {
                self.io.messages_out += 1;
                respond(channel, id, msg.into());
            }
            // The operator asks again: a repeat gets the same answer.
            None => debug!(peer = %to.peer, "reply for a closed client connection dropped"),
        }
    }
}

fn lookup_failed(error: &crate::store::StoreError) -> ClientResponse {
    error!(%error, "store lookup failed");
    ClientResponse::Refused {
        reason: format!("cannot read the participant's store: {error}"),
    }
}

/// The oldest entries that fit [`LOOKUP_REPLY_BYTES_MAX`], and how many did not.
fn bounded_in_doubt(mut entries: Vec<InDoubtEntry>) -> (Vec<InDoubtEntry>, u64) {
    let mut bytes = 0;
    let fit = entries
        .iter()
        .take_while(|entry| {
            bytes += entry.text_len();
            bytes <= LOOKUP_REPLY_BYTES_MAX
        })
        .count();
    let omitted = entries.len() - fit;
    entries.truncate(fit);
    (entries, omitted as u64)
}

/// The txn with as many of its log rows as fit [`LOOKUP_REPLY_BYTES_MAX`].
fn bounded_lookup(lookup: TxnLookup) -> TxnLookup {
    let TxnLookup::Voted(mut row) = lookup else {
        return lookup;
    };
    let mut bytes = row.reason.as_ref().map_or(0, String::len);
    let fit = row
        .log
        .iter()
        .take_while(|entry| {
            bytes += entry.text_len();
            bytes <= LOOKUP_REPLY_BYTES_MAX
        })
        .count();
    row.log_omitted = (row.log.len() - fit) as u64;
    row.log.truncate(fit);
    TxnLookup::Voted(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::admin::{LogRow, TxnRow};

    fn entry(keys: String) -> InDoubtEntry {
        InDoubtEntry {
            txn_id: "t".into(),
            protocol: "2pc".into(),
            coordinator: 100,
            state: "prepared".into(),
            created_at: "c".into(),
            age_s: 1,
            keys: Some(keys),
            participants: None,
        }
    }

    #[test]
    fn a_long_in_doubt_list_is_cut_at_the_bound_and_says_how_many_are_left_out() {
        let big = "k".repeat(LOOKUP_REPLY_BYTES_MAX / 4);
        let (entries, omitted) = bounded_in_doubt(vec![entry(big.clone()); 6]);
        assert_eq!((entries.len(), omitted), (3, 3));
        let (entries, omitted) = bounded_in_doubt(vec![entry("a".into()); 2]);
        assert_eq!((entries.len(), omitted), (2, 0));
    }

    #[test]
    fn a_txn_with_large_images_keeps_the_rows_that_fit() {
        let value = Some(wire::Value::Text("v".repeat(LOOKUP_REPLY_BYTES_MAX / 5)));
        let log = (0..4)
            .map(|seq| LogRow {
                seq,
                key: "a".into(),
                op: "put".into(),
                undo: value.clone(),
                redo: value.clone(),
            })
            .collect();
        let row = TxnRow {
            txn_id: "t".into(),
            protocol: "2pc".into(),
            coordinator: 100,
            state: "prepared".into(),
            reason: None,
            created_at: "c".into(),
            decided_at: None,
            participants: None,
            log,
            log_omitted: 0,
        };
        let TxnLookup::Voted(row) = bounded_lookup(TxnLookup::Voted(row)) else {
            panic!("a voted txn stays one");
        };
        assert_eq!((row.log.len(), row.log_omitted), (2, 2));
        assert_eq!(bounded_lookup(TxnLookup::Unknown), TxnLookup::Unknown);
    }
}
