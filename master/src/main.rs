//! `master`: registers replicas, serves the replica list and the leader, and
//! drives leader failover.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// Membership service and leader oracle for a replica group, or for a sharded
/// deployment of several groups.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    after_help = "Examples:\n  master --port 7087 --replicas 3\n  master --addr 0.0.0.0 --port 7087 --replicas 5 --liveness-timeout-ms 1000\n  master --port 7087 --replicas 3 --shards 3     (9 replicas: start each server with --shard 0, 1 or 2)\n  master --port 7087 --replicas 3 --state /var/lib/smr/master.state\n  master --port 7087 --replicas 3 --state /var/lib/smr/master.state   (again, after a crash: the restart)\n\nStart the master first, then the servers with --master HOST:PORT; it answers them once all\nSHARDS x N have registered. Replica ids are global: shard s holds ids s*N .. s*N+N-1.\n\nRestarting: the replicas keep serving without the master and reconnect to it by themselves.\nStart it again on the same address with the same --state FILE: it knows every replica from\nthe file, and the deployment is complete again once a majority of each shard has reconnected;\nreplicas that come back later rejoin under their ids. Without --state a restarted master\nwaits for all SHARDS x N replicas, as at first start."
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    addr: String,
    /// Port to listen on (0 picks a free one; the chosen port is printed).
    #[arg(long, default_value_t = 7087)]
    port: u16,
    /// Number of replicas in the group (in each shard, with --shards).
    #[arg(long, short = 'n', default_value_t = 3)]
    replicas: usize,
    /// Number of shards, each a group of --replicas replicas with its own leader.
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// How often replicas are pinged, in milliseconds.
    #[arg(long, default_value_t = 100)]
    ping_interval_ms: u64,
    /// A replica silent for this long is considered down, in milliseconds.
    #[arg(long, default_value_t = 600)]
    liveness_timeout_ms: u64,
    /// Drive Multi-Paxos and MDLin failover from the master (the old way): ask
    /// the most up-to-date live replica to lead whenever the master loses sight
    /// of the leader. By default their replicas elect their own leaders and the
    /// master only reports them; this flag can depose a leader that is cut
    /// off from the master but not from its peers.
    #[arg(long)]
    master_failover: bool,
    /// Membership file, rewritten atomically on every membership change; a
    /// master restarted with the same file rebuilds ids and addresses from it
    /// and needs only a majority of each shard back (see `--help`).
    #[arg(long, value_name = "FILE")]
    state: Option<std::path::PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    genericsmr::logging::init("info");
    let a = Args::parse();
    anyhow::ensure!(
        a.replicas >= 1 && a.replicas <= genericsmr::MAX_REPLICAS,
        "--replicas must be between 1 and {}",
        genericsmr::MAX_REPLICAS
    );
    anyhow::ensure!(
        a.shards >= 1 && a.shards * a.replicas <= genericsmr::MAX_REPLICAS,
        "--shards must be at least 1, and --shards times --replicas ({} x {}) at most {}",
        a.shards,
        a.replicas,
        genericsmr::MAX_REPLICAS
    );
    // Read before binding: a damaged file stops the master before any replica talks to it.
    let restored = match &a.state {
        Some(p) => {
            let st = master::State::load(p)?;
            if let Some(st) = &st {
                st.check_shape(p, a.replicas, a.shards)?;
                println!(
                    "master state from {}: {} of {} replicas known",
                    p.display(),
                    st.replicas.len(),
                    a.replicas * a.shards
                );
            }
            st
        }
        None => None,
    };
    let l = tokio::net::TcpListener::bind((a.addr.as_str(), a.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{}; is another master running? pick another --port",
                a.addr, a.port
            )
        })?;
    let local = l.local_addr()?;
    if a.shards == 1 {
        println!("master listening on {local} for {} replicas", a.replicas);
    } else {
        println!(
            "master listening on {local} for {} shards of {} replicas",
            a.shards, a.replicas
        );
    }
    tracing::info!(%local, n = a.replicas, shards = a.shards, "master started");
    let cfg = master::MasterConfig {
        n: a.replicas,
        shards: a.shards,
        ping_interval: Duration::from_millis(a.ping_interval_ms),
        liveness_timeout: Duration::from_millis(a.liveness_timeout_ms),
        replicas_elect: !a.master_failover,
        state_file: a.state,
        restored,
    };
    master::serve(l, cfg)
        .await
        .context("the master stopped serving")
}
