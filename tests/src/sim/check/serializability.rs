//! Serializability of the committed history, in the style of Adya's dependency graph (as
//! Jepsen's Elle checks it): a node per committed transaction, an edge for every
//! write-write (the next version of a key), write-read (a read of a version) and
//! read-write anti-dependency (a read of a version that a later committed txn
//! overwrote); any cycle means no serial order explains what the clients saw.
//!
//! Versions are per participant and key, in the order the `Committed` records became
//! durable there. Which version a read saw comes from the Prepare's evaluation whose
//! values match the reads the client was told (a repeated Prepare may read again).

use std::collections::{BTreeMap, BTreeSet};

use wire::{Decision, NodeId, Op, TxnId};

use super::View;
use crate::sim::history::{ClientView, History, Observed};
use crate::sim::trace::node_name;

/// Cycles reported per run; one is enough to fail it, a few help to read it.
const CYCLES_REPORTED_MAX: usize = 3;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Edge {
    WriteWrite,
    WriteRead,
    ReadWrite,
}

impl Edge {
    fn text(self) -> &'static str {
        match self {
            Edge::WriteWrite => "ww",
            Edge::WriteRead => "wr",
            Edge::ReadWrite => "rw",
        }
    }
}

type Graph = BTreeMap<TxnId, BTreeMap<TxnId, (Edge, String)>>;

pub fn check(view: &View<'_>) -> Vec<String> {
    let history = view.history;
    let mut found = Vec::new();
    let mut graph: Graph = BTreeMap::new();
    let mut add = |from: TxnId, to: TxnId, edge: Edge, why: String| {
        if from != to {
            graph
                .entry(from)
                .or_default()
                .entry(to)
                .or_insert((edge, why));
        }
    };
    for ((node, key), versions) in &history.versions {
        for pair in versions.windows(2) {
            add(
                pair[0],
                pair[1],
                Edge::WriteWrite,
                format!("{} {key}", node_name(*node)),
            );
        }
    }
    for (txn, info) in &history.txns {
        if info.client != ClientView::Committed {
            continue;
        }
        for (node, ops) in &info.parts {
            let Some(reads) = info.reads.iter().find(|(part, _)| part == node) else {
                continue;
            };
            let Some(seen) = versions_read(history, *txn, *node, ops, &reads.1) else {
                found.push(format!(
                    "{}'s reads on {} match none of its evaluations there",
                    history.name(*txn),
                    node_name(*node)
                ));
                continue;
            };
            for (key, writer) in seen {
                let where_ = format!("{} {key}", node_name(*node));
                let versions = history
                    .versions
                    .get(&(*node, key.clone()))
                    .map_or(&[][..], Vec::as_slice);
                let next = match writer {
                    Some(writer) => {
                        add(writer, *txn, Edge::WriteRead, where_.clone());
                        versions
                            .iter()
                            .position(|version| *version == writer)
                            .and_then(|at| versions.get(at + 1))
                    }
                    None => versions.first(),
                };
                if let Some(next) = next {
                    add(*txn, *next, Edge::ReadWrite, where_);
                }
            }
        }
    }
    for cycle in cycles(&graph).into_iter().take(CYCLES_REPORTED_MAX) {
        let text: Vec<String> = cycle
            .windows(2)
            .map(|pair| {
                let (edge, why) = &graph[&pair[0]][&pair[1]];
                format!(
                    "{} -{}({why})-> {}",
                    history.name(pair[0]),
                    edge.text(),
                    history.name(pair[1])
                )
            })
            .collect();
        found.push(format!(
            "dependency cycle among committed txns: {}",
            text.join(", ")
        ));
    }
    // Writers the checker counted as committed must be committed somewhere.
    for ((node, key), versions) in &history.versions {
        for writer in versions {
            if !history.applied_anywhere(*writer, Decision::Commit) {
                found.push(format!(
                    "{} {key}: version by {} never committed",
                    node_name(*node),
                    history.name(*writer)
                ));
            }
        }
    }
    found
}

/// The version (writer) each of `txn`'s reads on `node` saw, by key, skipping reads of
/// the txn's own earlier writes. `None` if no evaluation of its Prepare there gave the
/// values the client was told.
fn versions_read(
    history: &History,
    txn: TxnId,
    node: NodeId,
    ops: &[Op],
    reads: &[wire::Read],
) -> Option<Vec<(String, Option<TxnId>)>> {
    let mut written = BTreeSet::new();
    let mut external = Vec::new();
    let mut gets = 0;
    for op in ops {
        match op {
            Op::Get { key } => {
                let read = reads.get(gets)?;
                gets += 1;
                if !written.contains(key.as_str()) {
                    external.push(read);
                }
            }
            other => {
                written.insert(other.key());
            }
        }
    }
    if external.is_empty() {
        return Some(Vec::new());
    }
    let evaluations = history.observed.get(&(txn, node))?;
    let matches = |evaluation: &Vec<Observed>| {
        external.iter().all(|read| {
            evaluation
                .iter()
                .any(|seen| seen.key == read.key && seen.value == read.value)
        })
    };
    let evaluation = evaluations.iter().find(|evaluation| matches(evaluation))?;
    Some(
        external
            .iter()
            .filter_map(|read| {
                evaluation
                    .iter()
                    .find(|seen| seen.key == read.key)
                    .map(|seen| (seen.key.clone(), seen.writer))
            })
            .collect(),
    )
}

/// Some cycles of `graph` (each as its nodes, first repeated last), found by depth-first
/// search: one per back edge met.
fn cycles(graph: &Graph) -> Vec<Vec<TxnId>> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Color {
        Grey,
        Black,
    }
    let mut color: BTreeMap<TxnId, Color> = BTreeMap::new();
    let mut found = Vec::new();
    let empty = BTreeMap::new();
    for &start in graph.keys() {
        if color.contains_key(&start) {
            continue;
        }
        // The path from `start`, each with the successors still to visit.
        let mut path: Vec<(TxnId, Vec<TxnId>)> = Vec::new();
        color.insert(start, Color::Grey);
        let successors = |txn: TxnId| -> Vec<TxnId> {
            graph
                .get(&txn)
                .unwrap_or(&empty)
                .keys()
                .rev()
                .copied()
                .collect()
        };
        path.push((start, successors(start)));
        while let Some((txn, pending)) = path.last_mut() {
            let txn = *txn;
            let Some(next) = pending.pop() else {
                color.insert(txn, Color::Black);
                path.pop();
                continue;
            };
            match color.get(&next) {
                None => {
                    color.insert(next, Color::Grey);
                    path.push((next, successors(next)));
                }
                Some(Color::Grey) => {
                    if found.len() < CYCLES_REPORTED_MAX {
                        let from = path
                            .iter()
                            .position(|(on_path, _)| *on_path == next)
                            .unwrap_or(0);
                        let mut cycle: Vec<TxnId> =
                            path[from..].iter().map(|(on_path, _)| *on_path).collect();
                        cycle.push(next);
                        found.push(cycle);
                    }
                }
                Some(Color::Black) => {}
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn t(n: u128) -> TxnId {
        TxnId(Uuid::from_u128(n))
    }

    #[test]
    fn finds_a_cycle_and_none_in_a_chain() {
        let mut graph: Graph = BTreeMap::new();
        let edge = || (Edge::WriteWrite, String::new());
        graph.entry(t(1)).or_default().insert(t(2), edge());
        graph.entry(t(2)).or_default().insert(t(3), edge());
        assert!(cycles(&graph).is_empty());
        graph.entry(t(3)).or_default().insert(t(1), edge());
        assert_eq!(cycles(&graph), vec![vec![t(1), t(2), t(3), t(1)]]);
    }
}
