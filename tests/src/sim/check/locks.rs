//! No locks left: a participant whose transactions have all ended (nothing in doubt on
//! disk, nothing active in the core) holds no lock.

use super::View;
use crate::sim::trace::node_name;

pub fn check(view: &View<'_>) -> Vec<String> {
    view.participants
        .iter()
        .filter(|end| end.active() == 0 && end.in_doubt_on_disk() == 0 && end.locks_held > 0)
        .map(|end| {
            format!(
                "{} holds {} locks with every txn ended",
                node_name(end.id),
                end.locks_held
            )
        })
        .collect()
}
