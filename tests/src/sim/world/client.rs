//! The simulated client: at each `Submit` event it draws the next transaction of the
//! workload and submits it to a coordinator that is up (or notes that none was).

use rand::Rng;
use uuid::Uuid;
use wire::{NodeId, TxnId};

use super::super::history::{ClientView, TxnInfo, txn_name};
use super::super::trace::{self, COORDINATOR, node_name};
use super::super::workload;
use super::{Event, World};

impl World {
    pub(super) fn submit(&mut self) {
        let stop_ms = self.options.safety_ms + self.options.healing_workload_ms;
        if self.now_ms >= stop_ms {
            return;
        }
        let next = self.after(self.options.submit_interval_ms.clone());
        self.schedule(next, Event::Submit);
        // Transactions spread over the coordinators (a one-coordinator run draws nothing).
        let coordinator = match self.coordinators.len() {
            1 => COORDINATOR,
            count => NodeId(COORDINATOR.0 + self.rng.random_range(0..count) as u32),
        };
        if !self.host(coordinator).alive {
            self.begin(
                "cli",
                format!("{} down: not submitted", node_name(coordinator)),
            );
            return;
        }
        self.next_txn += 1;
        let number = self.next_txn;
        let txn = match self.options.retain_ms {
            None => TxnId(Uuid::from_u128(u128::from(number))),
            // The submit time in the top 48 bits, as in a v7 id: what horizons compare.
            Some(_) => TxnId(Uuid::from_u128(
                (u128::from(self.now_ms) << 80) | u128::from(number),
            )),
        };
        let nodes = self.participant_ids();
        let (kind, spec) = workload::next_txn(&mut self.rng, &self.options, &nodes);
        if self.tracing() {
            let parts: Vec<String> = spec
                .parts
                .iter()
                .map(|(node, ops)| format!("{}[{}]", node_name(*node), trace::ops_text(ops)))
                .collect();
            self.begin(
                &node_name(coordinator),
                format!(
                    "submit {} {} timeout {} {}",
                    txn_name(txn),
                    spec.protocol.as_str(),
                    spec.timeout_ms,
                    parts.join(" ")
                ),
            );
        }
        self.history.txns.insert(
            txn,
            TxnInfo {
                number,
                kind,
                protocol: spec.protocol,
                parts: spec.parts.clone(),
                submitted_ms: self.now_ms,
                in_healing: self.healing,
                client: ClientView::Pending,
                reads: Vec::new(),
            },
        );
        self.coordinator_submit(coordinator, number, txn, spec);
    }
}
