//! The multi-dispatch client (`client::MdlClient`) against real MDLin
//! processes: a master with three shards of three replicas, nine
//! `server --protocol mdlin`.

mod common;

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use checker::history::{Outcome as HOutcome, Record};
use client::{ClientConfig, ClientError, MdlClient, MdlFuture};
use common::{bounded, wait_for, Cluster, Opts};
use genericsmr::command::Command;
use genericsmr::shard::shard_of;

fn mdlin_cluster() -> Cluster {
    Cluster::start(
        3,
        Opts {
            shards: 3,
            protocol: Some("mdlin"),
            ..Default::default()
        },
    )
}

/// Polls `f` once: its result if it is already resolved.
async fn ready_now(f: &mut MdlFuture) -> Option<<MdlFuture as Future>::Output> {
    let polled = poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await;
    match polled {
        Poll::Ready(r) => Some(r),
        Poll::Pending => None,
    }
}

/// One issued operation, for the model and the history.
struct Issued {
    cmd: Command,
    pred: Option<u64>,
    invoke_ns: u64,
    /// For a get: the value the issue-order model says it reads.
    expect: Option<Option<String>>,
    fut: MdlFuture,
}

/// Tiny deterministic generator (the test needs no more).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Chains of 1 to 32 puts and gets over keys of every shard, each issued
/// without awaiting anything, then awaited: every get reads what issue order
/// says (the latest put to its key issued before it, in the same chain or an
/// earlier one), results are delivered in issue order (once the last one
/// resolved every earlier one is ready), preds and shard_seqs are as issued,
/// and the recorded history is MDL. Then operations are left un-awaited and
/// `barrier` waits for them all, and a second (single-dispatch) client reads
/// every key back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_across_shards_take_effect_in_issue_order() {
    bounded(async {
        let c = mdlin_cluster();
        c.shard_leaders().await;
        let mut cfg = ClientConfig::with_master(c.master_addr.clone());
        cfg.timeout = Duration::from_secs(20);
        cfg.attempt_timeout = Duration::from_millis(500);
        let m = MdlClient::connect(cfg).await.expect("mdl client connects");
        assert_eq!(m.shards(), 3);

        // Four keys per shard.
        let mut keys: Vec<String> = Vec::new();
        let mut per = [0; 3];
        for i in 0.. {
            let k = format!("k{i}");
            let s = shard_of(k.as_bytes(), 3) as usize;
            if per[s] < 4 {
                per[s] += 1;
                keys.push(k);
            }
            if per.iter().all(|n| *n == 4) {
                break;
            }
        }

        let started = Instant::now();
        let ns = || started.elapsed().as_nanos() as u64;
        let mut model: HashMap<String, String> = HashMap::new();
        let mut history = Vec::new();
        let mut rng = Lcg(7);
        let mut shard_seqs = [0u64; 3];
        let mut ops = 0;
        for len in 1..=32u64 {
            let mut chain: Vec<Issued> = Vec::new();
            for i in 0..len {
                let key = keys[rng.next(keys.len() as u64) as usize].clone();
                let t = ns();
                let (fut, cmd, expect) = if rng.next(2) == 0 {
                    let v = format!("c{len}-o{i}");
                    model.insert(key.clone(), v.clone());
                    let f = m.put(key.clone(), v.clone());
                    (f, Command::put(m.id(), 0, key, v), None)
                } else {
                    let e = model.get(&key).cloned();
                    (m.get(key.clone()), Command::get(m.id(), 0, key), Some(e))
                };
                let is = fut.issued();
                assert_eq!(is.shard as usize, shard_of(&cmd.key, 3) as usize);
                assert_eq!(is.shard_seq, shard_seqs[is.shard as usize]);
                shard_seqs[is.shard as usize] += 1;
                // Nothing of this chain was awaited: each op follows the previous
                // one unless that one was already answered.
                match chain.last() {
                    None => assert_eq!(is.pred, None, "a chain's first op is a head"),
                    // If the previous op was answered before this one was
                    // issued (the issuing thread lost its core on a loaded
                    // machine), this op heads a new chain, and the history
                    // records it so.
                    Some(prev) => {
                        if let Some(p) = is.pred {
                            assert_eq!(p.seq, prev.fut.seq());
                            assert_eq!(p.shard, prev.fut.issued().shard);
                        }
                    }
                }
                let cmd = Command { seq: is.seq, ..cmd };
                chain.push(Issued {
                    cmd,
                    pred: is.pred.map(|p| p.seq),
                    invoke_ns: t,
                    expect,
                    fut,
                });
            }
            // Await the last one: every earlier one must be resolved by then.
            let last = chain.len() - 1;
            let last_result = (&mut chain[last].fut).await;
            let end = ns();
            let mut results = Vec::new();
            for op in chain.iter_mut().take(last) {
                let r = ready_now(&mut op.fut)
                    .await
                    .unwrap_or_else(|| panic!("op {} undelivered after a later one", op.cmd.seq));
                results.push(r);
            }
            results.push(last_result);
            for (op, r) in chain.into_iter().zip(results) {
                let o = r.unwrap_or_else(|e| panic!("op {} ({:?}): {e}", op.cmd.seq, op.cmd.op));
                if let Some(e) = &op.expect {
                    let got = o
                        .value
                        .as_deref()
                        .map(|v| String::from_utf8_lossy(v).into_owned());
                    assert_eq!(&got, e, "get of {:?} (op {})", op.cmd.key, op.cmd.seq);
                }
                history.push(
                    Record::of(&op.cmd, op.invoke_ns, Some((end, &o)), HOutcome::Ok)
                        .with_pred(op.pred),
                );
                ops += 1;
            }
        }
        assert_eq!(m.outstanding(), 0);

        // The classic case in one chain: put k=v1, put k=v2, get k, plus a read
        // on another shard of a key written earlier in the same chain.
        let (a, b) = (keys[0].clone(), keys[11].clone());
        assert_ne!(shard_of(a.as_bytes(), 3), shard_of(b.as_bytes(), 3));
        let f1 = m.put(a.clone(), "v1");
        let f2 = m.put(b.clone(), "w");
        let f3 = m.put(a.clone(), "v2");
        let f4 = m.get(a.clone());
        let f5 = m.get(b.clone());
        for f in [f1, f2, f3] {
            f.await.expect("put");
        }
        assert_eq!(f4.await.expect("get").value.as_deref(), Some(&b"v2"[..]));
        assert_eq!(f5.await.expect("get").value.as_deref(), Some(&b"w"[..]));
        model.insert(a, "v2".into());
        model.insert(b, "w".into());

        // Fire and forget, then the barrier.
        for (i, k) in keys.iter().enumerate() {
            let v = format!("final-{i}");
            drop(m.put(k.clone(), v.clone()));
            model.insert(k.clone(), v);
        }
        assert!(m.outstanding() > 0 || keys.is_empty());
        m.barrier().await;
        assert_eq!(m.outstanding(), 0, "the barrier waits for every issued op");

        let verdict = checker::mdl::check_mdl(&history, &checker::linear::Options::default());
        assert_eq!(
            verdict.verdict,
            checker::Verdict::Ok,
            "{:?}",
            verdict.violation
        );

        // A second client, single-dispatch, reads everything back.
        let other = c.client().await;
        for k in &keys {
            let got = other.get(k.clone()).await.expect("read back");
            assert_eq!(
                got.as_deref(),
                model.get(k).map(|v| v.as_bytes()),
                "key {k}"
            );
        }
        eprintln!("{ops} chained operations in {:?}", started.elapsed());
    })
    .await
}

/// How shard 1's leader is taken away.
#[derive(Clone, Copy, Debug)]
enum Loss {
    /// SIGKILL: its connections close at once.
    Kill,
    /// SIGSTOP: its connections stay open and nothing answers, so only the
    /// attempt timeout (and the master's new leader) moves the client on.
    Stop,
}

/// Shard 1's leader is killed or stopped while one `MdlClient` keeps chains
/// of 8 operations over every shard in flight. The client's retries (resend
/// after the attempt timeout, reroute on a dead connection or a refusal,
/// leaders re-learned from the master) carry it through the failover: shard 1
/// serves it again afterwards, every chain is still delivered in issue order,
/// no operation succeeds after an earlier one of its chain failed, and the
/// history is MDL.
async fn chains_survive_losing_a_shard_leader(loss: Loss) {
    {
        let mut c = mdlin_cluster();
        let before = c.shard_leaders().await;
        let mut cfg = ClientConfig::with_master(c.master_addr.clone());
        cfg.timeout = Duration::from_secs(15);
        cfg.attempt_timeout = Duration::from_millis(300);
        let m = MdlClient::connect(cfg).await.expect("mdl client connects");
        let keys: Vec<String> = (0..24).map(|i| format!("f{i}")).collect();
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let chains = Arc::new(AtomicU64::new(0));
        // Chains that had an operation of shard 1 succeed, with its invocation time.
        let shard1_ok_at = Arc::new(AtomicU64::new(0));
        let load = {
            let (m, keys, stop, chains, shard1_ok_at) = (
                m.clone(),
                keys.clone(),
                stop.clone(),
                chains.clone(),
                shard1_ok_at.clone(),
            );
            tokio::spawn(async move {
                let ns = || started.elapsed().as_nanos() as u64;
                let mut rng = Lcg(11);
                let mut history = Vec::new();
                let mut value = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut chain = Vec::new();
                    for _ in 0..8 {
                        let key = keys[rng.next(keys.len() as u64) as usize].clone();
                        let t = ns();
                        let (fut, cmd) = if rng.next(2) == 0 {
                            value += 1;
                            let v = format!("v{value}");
                            (
                                m.put(key.clone(), v.clone()),
                                Command::put(m.id(), 0, key, v),
                            )
                        } else {
                            (m.get(key.clone()), Command::get(m.id(), 0, key))
                        };
                        let is = fut.issued();
                        let cmd = Command { seq: is.seq, ..cmd };
                        chain.push((cmd, is.pred.map(|p| p.seq), t, fut));
                    }
                    let last = chain.len() - 1;
                    let last_result = (&mut chain[last].3).await;
                    let end = ns();
                    let mut results = Vec::new();
                    for op in chain.iter_mut().take(last) {
                        let r = ready_now(&mut op.3).await;
                        results.push(r.expect("delivered in issue order"));
                    }
                    results.push(last_result);
                    let mut failed = false;
                    for ((cmd, pred, t, _), r) in chain.into_iter().zip(results) {
                        let rec = match &r {
                            Ok(o) => {
                                assert!(
                                    !failed,
                                    "op {} succeeded after a failed predecessor",
                                    cmd.seq
                                );
                                if shard_of(&cmd.key, 3) == 1 {
                                    shard1_ok_at.fetch_max(t, Ordering::Relaxed);
                                }
                                Record::of(&cmd, t, Some((end, o)), HOutcome::Ok)
                            }
                            Err(ClientError::Failed { .. }) => {
                                failed = true;
                                Record::of(&cmd, t, None, HOutcome::Fail)
                            }
                            Err(ClientError::Timeout { .. }) => {
                                Record::of(&cmd, t, None, HOutcome::Unknown)
                            }
                            Err(e) => panic!("op {}: unexpected error {e}", cmd.seq),
                        };
                        history.push(rec.with_pred(pred));
                    }
                    chains.fetch_add(1, Ordering::Relaxed);
                }
                history
            })
        };
        let done = || chains.load(Ordering::Relaxed);
        wait_for(
            Duration::from_secs(20),
            "chains before the kill",
            || async { (done() >= 30).then_some(()) },
        )
        .await;
        let victim = before[1];
        match loss {
            Loss::Kill => c.kill(victim),
            Loss::Stop => c.signal(victim, "STOP"),
        }
        let kill_ns = started.elapsed().as_nanos() as u64;
        wait_for(
            Duration::from_secs(20),
            "a new leader of shard 1",
            // The master's view: asking the replicas would wait on a stopped one.
            || async {
                let info = client::admin::cluster(&c.master_addr, Duration::from_secs(1))
                    .await
                    .ok()?;
                let l = info.leader_of(1)?;
                (usize::from(l) != victim).then_some(())
            },
        )
        .await;
        let failover_ns = started.elapsed().as_nanos() as u64;
        wait_for(
            Duration::from_secs(40),
            "shard 1 to serve the client again",
            || async { (shard1_ok_at.load(Ordering::Relaxed) > failover_ns).then_some(()) },
        )
        .await;
        let base = done();
        wait_for(
            Duration::from_secs(20),
            "chains after the failover",
            || async { (done() >= base + 10).then_some(()) },
        )
        .await;
        stop.store(true, Ordering::Relaxed);
        let history = load.await.expect("the load task");
        let count = |o: HOutcome| history.iter().filter(|r| r.outcome == o).count();
        let verdict = checker::mdl::check_mdl(&history, &checker::linear::Options::default());
        assert_eq!(
            verdict.verdict,
            checker::Verdict::Ok,
            "{:?}",
            verdict.violation
        );
        let spanning = history
            .iter()
            .filter(|r| r.invoke_ns <= kill_ns && r.return_ns.is_none_or(|e| e >= kill_ns))
            .count();
        let slowest = history
            .iter()
            .filter_map(|r| Some(r.return_ns? - r.invoke_ns))
            .max()
            .unwrap_or(0);
        eprintln!(
            "{loss:?}: {} operations ({} ok, {} failed, {} unknown; {spanning} in flight at the loss, slowest {:?}); loss at {:?}, new leader at {:?}",
            history.len(),
            count(HOutcome::Ok),
            count(HOutcome::Fail),
            count(HOutcome::Unknown),
            Duration::from_nanos(slowest),
            Duration::from_nanos(kill_ns),
            Duration::from_nanos(failover_ns),
        );
        if let Loss::Stop = loss {
            // Let the process die normally with the cluster.
            c.signal(victim, "CONT");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_survive_a_shard_leader_kill() {
    bounded(chains_survive_losing_a_shard_leader(Loss::Kill)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_survive_a_hung_shard_leader() {
    bounded(chains_survive_losing_a_shard_leader(Loss::Stop)).await
}
