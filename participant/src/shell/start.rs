//! Start-up of a participant node, in the order that keeps failures harmless: the
//! options checked, the listener bound, the store opened and recovered into the core,
//! then the writer, the accept loop and the mesh.

use std::sync::Arc;
use std::time::Instant;

use foldhash::{HashMap, HashMapExt};
use tracing::info;
use wire::{ChannelConfig, Listener, Role, runtime};

use super::start_checks::{check_db_dir, validate_peers};
use super::values::ValueCache;
use super::writer::{self, WRITER_QUEUE_MAX};
use super::{EVENT_QUEUE_MAX, EventLoop, Node, Options, ShellError, metrics, retention, status};
use crate::core::{Input, Participant};
use crate::store::Store;
use crate::store::admin::DbLock;

impl Node {
    /// Binds the listener, opens the store, recovers every in-doubt txn into the core,
    /// starts the writer, then accepts coordinators and clients and dials the mesh. The
    /// bind comes first: a node that cannot listen fails before it creates its database.
    pub async fn start(options: Options) -> Result<Node, ShellError> {
        let heartbeat_interval_ms =
            u64::try_from(options.heartbeat_interval.as_millis()).unwrap_or(u64::MAX);
        options
            .core
            .validate_for_heartbeat(heartbeat_interval_ms)
            .map_err(|error| ShellError::Config(error.to_string()))?;
        validate_peers(options.node_id, &options.peers)?;
        retention::validate(&options.retention, &options.core).map_err(ShellError::Config)?;
        let mut core = Participant::new(options.node_id, options.core.clone())
            .map_err(|error| ShellError::Config(error.to_string()))?;
        let mut channel_config = ChannelConfig {
            heartbeat_interval: options.heartbeat_interval,
            auth: options.auth.clone(),
            connections: options.connections,
            ..ChannelConfig::new(
                options.node_id,
                Role::Participant,
                options.cluster_id.clone(),
            )
        };
        channel_config.set_max_frame_len(options.frame_bytes_max);
        if let Some(in_flight_max) = options.channel_in_flight_max {
            channel_config.in_flight_max = in_flight_max;
        }
        channel_config.validate().map_err(ShellError::Config)?;
        // Connections that arrive before the accept loop starts wait in the backlog.
        let listener =
            Listener::bind(options.listen)
                .await
                .map_err(|source| ShellError::Listen {
                    addr: options.listen,
                    source,
                })?;
        check_db_dir(&options.db)?;
        let db_lock = DbLock::acquire(&options.db)?;
        let store = Store::open(&options.db).await?;
        let recovered = store.in_doubt_txns().await?;
        let (holds, wall_ms) = store.read_holds().await?;
        let stored_max = store.max_txn_id().await?;
        let mut writer = store.writer().await?;
        writer.limit_wal().await?;
        // Counted once, before serving, then kept exact by the writer: what `status` and
        // `--retain-txns` read, so neither counts every row while the node serves.
        writer.kept_txns().await?;
        // Before any input: ids below what pruning reached may be gone from the store.
        let stored_horizon = store.horizon().await?;
        core.set_horizon(stored_horizon);
        let retention = retention::Shared::new(options.retention, &options.core, stored_horizon);
        writer::log_retention(&retention);
        let clock = Instant::now();
        let mut event_loop = EventLoop {
            node_id: options.node_id,
            core,
            store,
            clock,
            events: wire::event_queue(EVENT_QUEUE_MAX),
            peers: HashMap::new(),
            mesh_peers: options.peers.clone(),
            clients: HashMap::new(),
            values: ValueCache::default(),
            writer_queue: runtime::bounded(WRITER_QUEUE_MAX + 1),
            durable: runtime::bounded(WRITER_QUEUE_MAX + 1),
            outstanding: 0,
            local_addr: options.listen,
            io: status::IoCounts::default(),
            retention: retention.clone(),
            horizon_at: clock,
            alarm: runtime::Alarm::default(),
            writer_task: None,
            metrics: metrics::Recorder::new(Arc::new(metrics::Metrics::new(
                channel_config.traffic.clone(),
            ))),
        };
        if !recovered.is_empty() {
            info!(
                txns = recovered.len(),
                "recovered in-doubt txns; their keys stay locked"
            );
        }
        let now = event_loop.now();
        event_loop.core.handle(
            now,
            Input::Recover {
                txns: recovered,
                holds,
                wall_ms,
                stored_max,
            },
        );

        let local_addr = listener.local_addr();
        event_loop.local_addr = local_addr;
        event_loop.writer_task = Some(runtime::spawn(writer::run(
            writer,
            event_loop.writer_queue.1.clone(),
            event_loop.durable.0.clone(),
            retention,
        )));
        let channel_config = Arc::new(channel_config);
        // Started even with no peers listed: the listener then still accepts participants
        // that list us (and dial us, having the larger id).
        let mesh = wire::mesh(
            options.peers.clone(),
            channel_config.clone(),
            event_loop.events.0.clone(),
        );
        let serve = listener.serve_mesh(
            channel_config,
            vec![Role::Coordinator, Role::Client, Role::Participant],
            event_loop.events.0.clone(),
            &mesh,
        );
        info!(node = %options.node_id, addr = %local_addr, db = %options.db.display(), peers = options.peers.len(), "participant ready");
        Ok(Node {
            local_addr,
            event_loop,
            _serve: serve,
            _mesh: mesh,
            _db_lock: db_lock,
        })
    }
}
