//! Makes cargo rebuild when a migration file changes (sqlx::migrate! alone does not notice new files).
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
