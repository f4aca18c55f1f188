//! MDLin's durable journal on real processes: two shards of three with
//! `--durable`, chained multi-dispatch clients under load, and every replica
//! of shard 1 killed with SIGKILL at once and restarted on its data folder.
//! No acknowledged operation may be lost (final reads of every key join the
//! history, and each shard applied at least its acknowledged operations),
//! and the history must pass the MDL checker.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::driver::{Mode, Progress, Spec};
use bench::history::Outcome;
use bench::route::Route;
use bench::workload::Mix;
use common::{bounded, wait_for, Cluster, Opts};
use genericsmr::shard::shard_of;

const SHARDS: usize = 2;
const KEYS: u64 = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_shard_killed_mid_load_restarts_on_its_journal_and_loses_nothing() {
    bounded(async {
        let mut c = Cluster::start(
            3,
            Opts {
                shards: SHARDS,
                protocol: Some("mdlin"),
                durable: true,
                ..Default::default()
            },
        );
        c.shard_leaders().await;
        let route = Arc::new(Route::with_master(&c.master_addr).await.unwrap());
        let spec = Spec {
            mode: Mode::Closed { window: 1 },
            clients: 4,
            duration_s: 90.0,
            warmup_s: 0.0,
            cooldown_s: 0.0,
            mix: Mix {
                reads_pct: 40.0,
                keys: KEYS,
                ..Mix::default()
            },
            seed: 11,
            attempt_timeout_ms: 300,
            op_timeout_ms: 20_000,
            wan: None,
            spread: false,
            fanout: 4,
            multi_dispatch: true,
        };
        let progress = Arc::new(Progress::default());
        let load_started = Instant::now();
        let load = {
            let (route, progress) = (route.clone(), progress.clone());
            tokio::spawn(async move { bench::driver::run(&spec, route, true, progress).await })
        };
        let done = || progress.done.load(Ordering::Relaxed);
        wait_for(Duration::from_secs(30), "load before the kill", || async {
            (done() >= 300).then_some(())
        })
        .await;

        // Every replica of shard 1 at once: only the journals on disk remain.
        let shard1: Vec<usize> = (3..6).collect();
        for id in &shard1 {
            c.kill(*id);
        }
        let acked_at_kill = done();
        tokio::time::sleep(Duration::from_millis(500)).await;
        for id in &shard1 {
            c.restart(*id, true);
        }
        let restarted_ns = load_started.elapsed().as_nanos() as u64;
        for id in &shard1 {
            let st = c.status(*id).await.expect("a restarted replica answers");
            assert!(
                st.replayed > 0,
                "replica {id} replayed its journal (status {st:?})"
            );
        }
        let leader = wait_for(
            Duration::from_secs(30),
            "shard 1 leads again",
            || async { c.shard_leaders().await.get(1).copied() },
        )
        .await;
        assert!(shard1.contains(&leader));
        let base = done();
        wait_for(Duration::from_secs(40), "load after the restart", || async {
            (done() >= base + 300).then_some(())
        })
        .await;
        progress.stop.store(true, Ordering::Relaxed);
        let out = load.await.unwrap().expect("the load ran");
        let mut history = out.history;

        let on1 = |k: &str| shard_of(k.as_bytes(), SHARDS as u32) == 1;
        let late = history
            .iter()
            .filter(|r| on1(&r.key) && r.outcome == Outcome::Ok && r.invoke_ns > restarted_ns)
            .count();
        assert!(late > 0, "shard 1 serves again after the restart");
        let early_writes = history
            .iter()
            .filter(|r| {
                on1(&r.key)
                    && r.outcome == Outcome::Ok
                    && r.op != "get"
                    && r.return_ns.is_some_and(|t| t < restarted_ns)
            })
            .count();
        assert!(
            acked_at_kill > 0 && early_writes > 20,
            "shard 1 acknowledged writes before the kill: {early_writes}"
        );

        // Final reads of every key, after the load: a write acknowledged
        // before the kill and lost by the restart would show up here (or in
        // the reads during the load) as a stale value.
        let mut cfg = client::ClientConfig::with_master(c.master_addr.clone());
        cfg.timeout = Duration::from_secs(20);
        cfg.attempt_timeout = Duration::from_millis(300);
        let cl = client::Client::connect(cfg).await.expect("client connects");
        let mut read_values = 0;
        for k in 0..KEYS {
            let key = format!("k{k}");
            let cmd = cl.prepare(genericsmr::command::Command::get(cl.id(), 0, key.clone()));
            let t0 = load_started.elapsed().as_nanos() as u64;
            let o = cl.submit(cmd.clone()).await.expect("a final read");
            let t1 = load_started.elapsed().as_nanos() as u64;
            read_values += usize::from(o.value.is_some());
            history.push(checker::history::Record::of(
                &cmd,
                t0,
                Some((t1, &o)),
                Outcome::Ok,
            ));
        }
        assert!(read_values > KEYS as usize / 2, "the final reads see values");
        assert!(
            history.iter().any(|r| r.key.starts_with('k')),
            "the load uses keys k0.. (the final reads must name them)"
        );
        let reads = history
            .iter()
            .filter(|r| r.op == "get" && r.outcome == Outcome::Ok && r.value.is_some())
            .count();
        assert!(reads > 50, "reads that could expose a lost write: {reads}");
        let verdict = checker::check_mdl(&history, &checker::linear::Options::default());
        assert_eq!(
            verdict.verdict,
            checker::Verdict::Ok,
            "{:?}",
            verdict.violation
        );

        // Every replica (the restarted ones too) converges, and each shard
        // applied every acknowledged operation, nothing failed, nothing twice.
        let digests = wait_for(Duration::from_secs(20), "replicas converge", || async {
            let mut by_shard = vec![Vec::new(); SHARDS];
            for id in c.running() {
                let st = c.status(id).await?;
                by_shard[id / 3].push((st.applied, st.digest()));
            }
            by_shard
                .iter()
                .all(|v| v.len() == 3 && v.windows(2).all(|w| w[0] == w[1]))
                .then_some(by_shard)
        })
        .await;
        for (s, reps) in digests.iter().enumerate() {
            let of = |o: Outcome| {
                history
                    .iter()
                    .filter(|r| shard_of(r.key.as_bytes(), SHARDS as u32) as usize == s && r.outcome == o)
                    .count() as u64
            };
            let (ok, unknown) = (of(Outcome::Ok), of(Outcome::Unknown));
            let applied = reps[0].0;
            assert!(
                ok <= applied && applied <= ok + unknown,
                "shard {s}: applied {applied}, ok {ok}, unknown {unknown}"
            );
        }
        eprintln!(
            "{} operations ({late} on shard 1 after the restart), verdict {:?} ({} states); per shard (applied, digest) {:?}",
            history.len(),
            verdict.verdict,
            verdict.states,
            digests
        );
    })
    .await
}
