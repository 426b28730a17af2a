//! The coordinator: a pure 2PC/3PC state machine (`core`), its SQLite decision log (`store`),
//! the async-std node around them (`shell`) and the command-line op syntax (`client`).

pub mod client;
pub mod core;
pub mod shell;
pub mod store;
