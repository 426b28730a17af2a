//! Starting a coordinator node: bind, open and recover the decision log, start the log
//! writer, dial the participants, accept clients, in that order.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use foldhash::{HashMap, HashMapExt};
use tracing::info;
use wire::{ChannelConfig, Listener, Role};

use super::{EVENT_QUEUE_MAX, IoCounts, Node, PeerSlot};
use crate::core::{Coordinator, Input, Millis};
use crate::shell::config::{ServeConfig, ShellError, validate};
use crate::shell::log_writer::{self, WRITE_BATCH_MAX};
use crate::shell::metrics::{Metrics, Recorder};
use crate::shell::outstanding::Outstanding;
use crate::shell::retention::Pruner;
use crate::store::{Store, StoreError};

impl Node {
    /// Binds the client listener, opens the store, recovers and dials every participant,
    /// in that order: a node that cannot listen (say, the port is another coordinator's)
    /// fails before it creates a file or knocks a live coordinator's channels down.
    pub async fn start(config: ServeConfig) -> Result<Node, ShellError> {
        validate(&config)?;
        let core_config = config.core_config()?;
        let mut channel_config =
            ChannelConfig::new(config.node_id, Role::Coordinator, config.cluster_id.clone());
        channel_config.heartbeat_interval = config.heartbeat_interval;
        channel_config.auth = config.auth.clone();
        channel_config.connections = config.connections;
        channel_config.set_max_frame_len(config.frame_bytes_max);
        if let Some(in_flight_max) = config.channel_in_flight_max {
            channel_config.in_flight_max = in_flight_max;
        }
        let channel_config = Arc::new(channel_config);
        channel_config.validate().map_err(ShellError::Config)?;
        // Connections that arrive before the accept loop starts wait in the backlog.
        let listener =
            Listener::bind(config.listen)
                .await
                .map_err(|source| ShellError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let start = Instant::now();
        let mut store = open_store(&config.db).await?;
        let recovered = store.recover().await?;
        info!(db = %config.db.display(), unfinished_commits = recovered.len(), "decision log recovered");

        let mut core = Coordinator::new(core_config);
        // Every record the core has outstanding belongs to a tracked transaction or a
        // pending end, which the in-flight limit bounds (recovered ones come on top):
        // with this capacity neither writer queue can fill, so the loop never waits on it.
        let log_queue_max = config.txns_in_flight_max + recovered.len() + WRITE_BATCH_MAX;
        core.handle(Millis(0), Input::Recovered { txns: recovered });
        store.limit_wal().await?;
        let pruner = Pruner::new(config.retention);
        let retention = pruner.figures.clone();
        let (log_records, log_events) = log_writer::spawn(store, log_queue_max, pruner);

        let (event_tx, events) = wire::event_queue(EVENT_QUEUE_MAX);
        let outstanding_max = channel_config.in_flight_max + channel_config.send_queue_max;
        let peers = config
            .participants
            .iter()
            .map(|&(id, addr)| {
                let dial = wire::dial(
                    addr,
                    id,
                    Role::Participant,
                    channel_config.clone(),
                    event_tx.clone(),
                );
                (
                    id,
                    PeerSlot {
                        addr,
                        channel: None,
                        down: None,
                        outstanding: Outstanding::new(outstanding_max),
                        _dial: dial,
                    },
                )
            })
            .collect();
        let local_addr = listener.local_addr();
        let metrics = Metrics::new(channel_config.traffic.clone());
        let serve = listener.serve(channel_config, vec![Role::Client], event_tx);
        let mut node = Node {
            config,
            core,
            start,
            events,
            log_records,
            log_events,
            peers,
            clients: HashMap::new(),
            local_addr,
            io: IoCounts::default(),
            retention,
            stopping: None,
            metrics: Recorder::new(Arc::new(metrics)),
            alarm: wire::runtime::Alarm::default(),
            _serve: serve,
        };
        node.flush().await?;
        Ok(node)
    }
}

/// Opens the decision log, naming a missing directory and a database of another kind.
async fn open_store(db: &Path) -> Result<Store, ShellError> {
    if let Some(dir) = db.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        return Err(ShellError::NoDbDir {
            db: db.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    // A file SQLite can read whose migration history is not ours is some other
    // database; the store's error keeps the detail.
    Store::open(db).await.map_err(|error| match error {
        StoreError::Migrate { .. } => ShellError::ForeignDb {
            db: db.to_path_buf(),
            source: error,
        },
        error => ShellError::Store(error),
    })
}
