//! The SQLite the nodes link is built with the workspace's flags (`.cargo/config.toml`):
//! syncs by fdatasync, no allocation statistics, a page cache per connection.

use sqlx::{Connection, SqliteConnection};

/// The flags libsqlite3-sys's build script read: cargo gives the same environment to
/// every build script and crate of one build, so this crate sees what SQLite was built with.
const BUILD_FLAGS: Option<&str> = option_env!("LIBSQLITE3_FLAGS");

#[test]
fn sqlite_is_built_with_the_workspace_flags() {
    let flags: Vec<&str> = BUILD_FLAGS
        .expect("LIBSQLITE3_FLAGS is set by .cargo/config.toml")
        .split_whitespace()
        .collect();
    // Not visible in `compile_options`: only the flag tells it.
    assert!(flags.contains(&"-DHAVE_FDATASYNC=1"), "{flags:?}");

    // The other two, as the linked SQLite reports them.
    let options: Vec<String> = wire::runtime::block_on(async {
        let mut conn = SqliteConnection::connect("sqlite::memory:")
            .await
            .expect("in-memory database");
        sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(&mut conn)
            .await
            .expect("compile options")
    });
    assert!(
        options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
        "{options:?}"
    );
    assert!(
        !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
        "{options:?}"
    );
    // And still serialized-thread-safe, as libsqlite3-sys builds it: sqlx's pool hands
    // connections from thread to thread.
    assert!(options.iter().any(|o| o == "THREADSAFE=1"), "{options:?}");
}
