//! The SQL text of a batch's one script: multi-row statements whose every value is a bind,
//! in texts that repeat from batch to batch, so sqlx's statement cache parses each text once
//! per connection (see `Batch::script` for what the statements write).
//!
//! A statement's rows go in chunks of `CHUNK_ROWS`: a `VALUES` list of placeholders, the
//! last one filled up with rows bound to NULL that the statement skips (more rows repeat
//! the statement). So a script's text depends only on how many chunks each statement
//! takes, and a few texts cover a steady load, where exact row counts would make a new
//! text, parsed again, for almost every batch (a first version wrote the padding as NULL
//! literals: 734 texts in 888 batches at 64 transactions in flight, and 20% less
//! throughput). Binds rather than one JSON array per statement: SQLite's JSON functions
//! took a fifth of the writer thread's instructions, unpacking each row field by field.

use std::sync::Arc;

use sqlx::Sqlite;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use uuid::Uuid;
use wire::TxnId;

/// Scripts sqlx keeps prepared per connection (its statement cache, least recently used
/// out; set on every connection of the store): far more than the few dozen texts a steady
/// load writes on the write connection.
pub(super) const STATEMENT_CACHE_SCRIPTS: usize = 100;

/// Rows of one statement's chunk: at 64 transactions in flight a participant's group
/// commit holds about a dozen parts (one chunk per statement), and a padding row costs a
/// few NULL binds and a step of SQLite's `VALUES` list, far less than a parse.
pub(super) const CHUNK_ROWS: usize = 32;
/// A script with a statement of more chunks than this is kept out of sqlx's statement
/// cache: a large batch, whose text is unlikely to repeat (the cache holds every statement
/// of each script it keeps: `STATEMENT_CACHE_SCRIPTS` of them at most).
pub(super) const CACHED_CHUNKS_MAX: usize = 8;

/// One value of a row. Text is shared, not copied, on its way to sqlx's connection
/// thread (sqlx wraps a `String` bind in one more allocation).
#[derive(Debug)]
pub(super) enum Bind {
    Text(Arc<str>),
    /// One of a few constant texts (a state, a protocol, an op): allocated once per script.
    Static(&'static str),
    Int(i64),
    Null,
}

impl Bind {
    pub(super) fn text(text: Option<&String>) -> Bind {
        text.map_or(Bind::Null, |text| Bind::Text(text.as_str().into()))
    }

    /// A txn id as the tables keep it: hyphenated lowercase (`TxnId`'s `Display`, without
    /// the formatting machinery: four ids per transfer part).
    pub(super) fn txn(txn: TxnId) -> Bind {
        let mut buffer = Uuid::encode_buffer();
        Bind::Text((*txn.0.hyphenated().encode_lower(&mut buffer)).into())
    }
}

/// A multi-row statement: `head`, then the `VALUES` rows (`columns` each, named
/// `column1`, `column2`, ... as SQLite names them), then `tail`, which must skip the rows
/// whose `column1` is NULL (the padding).
#[derive(Debug)]
pub(super) struct Statement {
    pub head: &'static str,
    pub columns: usize,
    pub tail: &'static str,
}

/// A script being built: its text and its binds, in order.
#[derive(Debug)]
pub(super) struct Script {
    text: String,
    binds: Vec<Bind>,
    /// A statement took more than `CACHED_CHUNKS_MAX` chunks.
    large: bool,
}

impl Script {
    /// `begun`: the SQLite transaction is open already (else the script begins it).
    pub(super) fn new(begun: bool) -> Script {
        let mut text = String::with_capacity(4096);
        if !begun {
            text.push_str("BEGIN IMMEDIATE;\n");
        }
        Script {
            text,
            binds: Vec::new(),
            large: false,
        }
    }

    /// Appends `statement` over `rows` rows, whose `values` are `statement.columns` per
    /// row, one row after another; no rows, no statement.
    pub(super) fn statement(
        &mut self,
        statement: &Statement,
        rows: usize,
        values: impl IntoIterator<Item = Bind>,
    ) {
        let chunks = rows.div_ceil(CHUNK_ROWS);
        if chunks > 0 {
            let row = format!("({})", vec!["?"; statement.columns].join(", "));
            let chunk = format!(
                "{}{}{}",
                statement.head,
                vec![row.as_str(); CHUNK_ROWS].join(", "),
                statement.tail
            );
            self.text.push_str(&chunk.repeat(chunks));
        }
        self.large |= chunks > CACHED_CHUNKS_MAX;
        let before = self.binds.len();
        let padding = chunks * CHUNK_ROWS - rows;
        self.binds.reserve((rows + padding) * statement.columns);
        self.binds.extend(values);
        debug_assert_eq!(
            self.binds.len() - before,
            rows * statement.columns,
            "{statement:?}"
        );
        // The text must not tell real rows from padding: then it would change with
        // every row count.
        self.binds
            .extend((0..padding * statement.columns).map(|_| Bind::Null));
    }

    /// The script, ending in COMMIT, with its binds.
    pub(super) fn query(mut self) -> Query<'static, Sqlite, SqliteArguments> {
        self.text.push_str("COMMIT;\n");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.text)).persistent(!self.large);
        let mut constants: Vec<(&'static str, Arc<str>)> = Vec::new();
        for bind in self.binds {
            query = match bind {
                Bind::Text(text) => query.bind(text),
                Bind::Static(text) => {
                    let shared = match constants.iter().find(|(constant, _)| *constant == text) {
                        Some((_, shared)) => shared.clone(),
                        None => {
                            let shared: Arc<str> = text.into();
                            constants.push((text, shared.clone()));
                            shared
                        }
                    };
                    query.bind(shared)
                }
                Bind::Int(int) => query.bind(int),
                Bind::Null => query.bind(None::<i64>),
            };
        }
        query
    }

    #[cfg(test)]
    fn text(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAIRS: Statement = Statement {
        head: "INSERT INTO t SELECT column1, column2 FROM (VALUES ",
        columns: 2,
        tail: ") WHERE column1 IS NOT NULL;\n",
    };

    fn values(rows: usize) -> impl Iterator<Item = Bind> {
        (0..rows * 2).map(|at| Bind::Int(at as i64))
    }

    /// Rows go in chunks filled up with rows bound to NULL, so a text depends only on the
    /// number of chunks; no rows, no statement; past a chunk, the statement repeats; past
    /// `CACHED_CHUNKS_MAX` chunks the script is not cached.
    #[test]
    fn rows_go_in_chunks_filled_with_null_rows() {
        let mut script = Script::new(true);
        script.statement(&PAIRS, 0, values(0));
        assert_eq!(script.text(), "");
        script.statement(&PAIRS, 3, values(3));
        let three = script.text().to_string();
        let placeholders = vec!["(?, ?)"; CHUNK_ROWS].join(", ");
        assert_eq!(
            three,
            format!(
                "INSERT INTO t SELECT column1, column2 FROM (VALUES {placeholders}) \
                 WHERE column1 IS NOT NULL;\n"
            )
        );
        assert_eq!(script.binds.len(), CHUNK_ROWS * 2);
        assert!(matches!(script.binds[5], Bind::Int(5)));
        assert!(
            script.binds[6..]
                .iter()
                .all(|bind| matches!(bind, Bind::Null))
        );
        assert!(!script.large);
        let mut script = Script::new(true);
        script.statement(&PAIRS, CHUNK_ROWS, values(CHUNK_ROWS));
        assert_eq!(
            script.text(),
            three,
            "the same text for 3 rows and a full chunk"
        );
        let mut script = Script::new(false);
        script.statement(&PAIRS, CHUNK_ROWS + 1, values(CHUNK_ROWS + 1));
        assert!(script.text().starts_with("BEGIN IMMEDIATE;\n"));
        assert_eq!(script.text().matches("INSERT INTO t").count(), 2);
        assert_eq!(script.binds.len(), CHUNK_ROWS * 2 * 2);
        assert!(!script.large);
        let rows = CHUNK_ROWS * CACHED_CHUNKS_MAX + 1;
        script.statement(&PAIRS, rows, values(rows));
        assert!(script.large);
    }

    /// Txn ids are written as `Display` writes them.
    #[test]
    fn txn_ids_are_hyphenated_lowercase() {
        let txn = TxnId::new_v7();
        match Bind::txn(txn) {
            Bind::Text(text) => assert_eq!(*text, txn.to_string()),
            other => panic!("{other:?}"),
        }
    }
}
