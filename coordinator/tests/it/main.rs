//! Coordinator integration tests (one test binary): the real `coordinator` binary's CLI
//! errors, and a served coordinator against in-process fake participants.

mod cli;
mod serve;
mod support;
