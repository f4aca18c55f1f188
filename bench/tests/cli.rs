//! `bench` end to end: real binaries, a real local cluster, the files it writes.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{assert_png, assert_svg, bench_bin, run};

/// The recorded history could have shown a violation: reads that saw
/// values, distinct values for every write, and keys written more than once
/// and read. `json` is a report.json or chaos.json.
fn assert_history_could_fail(json: &serde_json::Value, what: &str) {
    let h: checker::HistoryStats = serde_json::from_value(json["history"].clone())
        .unwrap_or_else(|e| panic!("{what}: no history section ({e}): {json}"));
    assert!(h.reads > 20 && h.reads_with_value > 10, "{what}: {h:?}");
    assert!(h.writes > 20, "{what}: {h:?}");
    assert_eq!(
        h.distinct_values, h.writes,
        "{what}: values are unique: {h:?}"
    );
    assert!(
        h.overwritten_keys > 0 && h.observable_keys > 0,
        "{what}: {h:?}"
    );
    assert_eq!(h.vacuous(), None, "{what}");
}

/// Every fault the chaos schedule planned took effect (and it planned at
/// least three), with one window of work recorded per fault; returns the
/// windows.
fn assert_every_fault_applied(j: &serde_json::Value) -> Vec<serde_json::Value> {
    let planned = j["faults_planned"].as_u64().unwrap();
    assert!(planned >= 3, "{}", j["actions"]);
    assert_eq!(j["faults_applied"].as_u64().unwrap(), planned);
    let windows = j["windows"].as_array().unwrap().clone();
    assert_eq!(windows.len() as u64, planned);
    windows
}

#[test]
fn local_run_writes_report_csv_hgrm_plots_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let hist = dir.path().join("h.jsonl");
    let stdout = run(
        &[
            "local",
            "--duration",
            "3s",
            "--warmup",
            "0.5s",
            "--cooldown",
            "0.5s",
            "--clients",
            "4",
            "--window",
            "2",
            "--reads",
            "30",
            "--keys",
            "20",
            "--out",
            out.to_str().unwrap(),
            "--history",
            hist.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(stdout.contains("throughput"), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    for f in [
        "protocol",
        "replicas",
        "workload",
        "throughput_ops_s",
        "latency_us",
        "ops_ok",
        "ops_failed",
    ] {
        assert!(r.get(f).is_some(), "report.json lacks {f}");
    }
    for f in ["p50", "p90", "p99", "p999", "max", "mean"] {
        assert!(r["latency_us"][f].as_f64().unwrap() > 0.0, "latency_us.{f}");
    }
    assert_eq!(r["protocol"], "paxos");
    assert_eq!(r["replicas"], 3);
    // One shard, one operation per request: requests are operations.
    assert_eq!(r["shards"], 1);
    assert_eq!(r["workload"]["fanout"], 1);
    assert_eq!(r["latency_us"], r["op_latency_us"]);
    assert_eq!(r["ops_ok"], r["requests_ok"]);
    assert_eq!(r["throughput_ops_s"], r["throughput_requests_s"]);
    assert!(r["throughput_ops_s"].as_f64().unwrap() > 100.0);
    assert_eq!(r["ops_failed"], 0);
    // Nothing moved the leader (the one named at the start is not a change).
    assert!(r.get("leader_changes").is_none(), "{}", r["leader_changes"]);
    let csv = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    assert!(csv.starts_with("second,ok_ops") && csv.lines().count() >= 4);
    assert!(std::fs::read_to_string(out.join("latency.hgrm"))
        .unwrap()
        .contains("#[Max"));
    for stem in ["latency_cdf", "throughput"] {
        assert_png(&out.join(format!("{stem}.png")));
        assert_svg(&out.join(format!("{stem}.svg")));
    }
    let recs =
        bench::history::read(std::io::BufReader::new(std::fs::File::open(&hist).unwrap())).unwrap();
    assert!(recs.len() as u64 >= r["ops_ok"].as_u64().unwrap());
    assert!(recs.iter().any(|r| r.op == "get") && recs.iter().any(|r| r.op == "put"));
    assert!(recs
        .iter()
        .all(|r| r.outcome == bench::history::Outcome::Ok));
    // Every written value is unique and names its writer.
    let puts: Vec<_> = recs.iter().filter(|r| r.op == "put").collect();
    let values: std::collections::HashSet<_> = puts.iter().map(|r| r.value.clone()).collect();
    assert_eq!(values.len(), puts.len(), "a value was written twice");
    for p in &puts {
        let v = p.value.as_deref().unwrap();
        assert!(
            v.starts_with(&format!("c{:016x}-s{:x}-", p.client, p.seq)),
            "{v}"
        );
    }
    // Every recorded history is checked, and the verdict is in the report,
    // with what the history let the checker see.
    assert_eq!(r["checker"]["verdict"], "ok", "{}", r["checker"]);
    assert!(r["checker"]["checked"].as_u64().unwrap() >= r["ops_ok"].as_u64().unwrap());
    assert!(r["checker"]["check_s"].as_f64().unwrap() >= 0.0);
    assert!(stdout.contains("checker"), "{stdout}");
    let h = &r["history"];
    let reads = recs.iter().filter(|r| r.op == "get").count() as u64;
    assert_eq!(h["operations"], recs.len() as u64, "{h}");
    assert_eq!(h["reads"], reads, "{h}");
    assert_eq!(h["writes"], puts.len() as u64, "{h}");
    assert_eq!(h["distinct_values"], puts.len() as u64, "{h}");
    assert_eq!(h["keys"], 20, "{h}");
    assert!(h["overwritten_keys"].as_u64().unwrap() > 0, "{h}");
    assert!(h["reads_with_value"].as_u64().unwrap() > 0, "{h}");
    // `bench check` agrees on the file, and rejects a doctored copy.
    let ok = Command::new(bench_bin())
        .args(["check", hist.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let mut doctored = recs.clone();
    let i = doctored
        .iter()
        .position(|r| r.op == "get" && r.value.is_some())
        .expect("a get that read a value");
    doctored[i].value = Some("never-written".into());
    let bad = dir.path().join("bad.jsonl");
    bench::history::write(std::fs::File::create(&bad).unwrap(), &doctored).unwrap();
    let out = Command::new(bench_bin())
        .args(["check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("Violation") && text.contains("never-written"),
        "{text}"
    );
    // A stale read: a get after two puts in a row on its key returns the
    // first. The witness is those three operations, written to a file that
    // fails again on its own.
    let done = |r: &bench::history::Record| r.return_ns.unwrap_or(u64::MAX);
    let (first, second, read) = recs
        .iter()
        .filter(|p| p.op == "put")
        .find_map(|p1| {
            let p2 = recs
                .iter()
                .find(|p2| p2.op == "put" && p2.key == p1.key && p2.invoke_ns > done(p1))?;
            let g = recs
                .iter()
                .position(|g| g.op == "get" && g.key == p1.key && g.invoke_ns > done(p2))?;
            Some((p1.clone(), p2.clone(), g))
        })
        .expect("a key written twice and read after");
    let mut stale = recs.clone();
    stale[read].value = first.value.clone();
    let bad = dir.path().join("stale.jsonl");
    bench::history::write(std::fs::File::create(&bad).unwrap(), &stale).unwrap();
    let out = Command::new(bench_bin())
        .args(["check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let witness_file = dir.path().join("stale.counterexample.jsonl");
    let witness = bench::history::read(std::io::BufReader::new(
        std::fs::File::open(&witness_file).unwrap(),
    ))
    .unwrap();
    // The read, the write it saw, and one put on the key that certainly came
    // between (`second`, or another one that also did).
    assert_eq!(witness.len(), 3, "{text}");
    for op in [&first, &stale[read]] {
        assert!(
            witness.contains(op),
            "{op:?} missing from the witness: {text}"
        );
    }
    assert!(
        witness
            .iter()
            .all(|w| w.key == second.key && (w.op == "put" || *w == stale[read])),
        "{text}"
    );
    let again = Command::new(bench_bin())
        .args([
            "check",
            witness_file.to_str().unwrap(),
            "--counterexample",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    // Without reads, nothing could have shown: the history is recorded by
    // default, into the output folder, and the verdict is "vacuous".
    let w = dir.path().join("w");
    let stdout = run(
        &[
            "local",
            "--duration",
            "1.5s",
            "--warmup",
            "0.2s",
            "--cooldown",
            "0.2s",
            "--clients",
            "2",
            "--reads",
            "0",
            "--keys",
            "5",
            "--out",
            w.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(stdout.contains("vacuous: no reads"), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["checker"]["verdict"], "vacuous", "{}", r["checker"]);
    assert_eq!(r["checker"]["vacuous"], "no reads");
    assert_eq!(r["history"]["reads"], 0);
    let out = Command::new(bench_bin())
        .args(["check", w.join("history.jsonl").to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("vacuous: no reads"), "{text}");
}

/// A run whose leader is moved records the move in report.json and says so
/// in its summary, so failover figures are not read as steady state.
#[test]
fn a_leader_change_during_a_run_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (out, faults) = (dir.path().join("r"), dir.path().join("f.toml"));
    std::fs::write(&faults, "[[step]]\nat = \"1s\"\ndo = \"set-leader 2\"\n").unwrap();
    let stdout = run(
        &[
            "local",
            "--duration",
            "3s",
            "--clients",
            "2",
            "--faults",
            faults.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(stdout.contains("leaders      moved"), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let changes = r["leader_changes"].as_array().expect("leader_changes");
    let last = changes.last().expect("a change");
    assert_eq!(last["to"], 2, "{changes:?}");
    assert_eq!(last["shard"], 0);
    let t = last["t_s"].as_f64().unwrap();
    assert!((0.9..2.5).contains(&t), "moved at {t} s");
}

#[test]
fn sweep_and_transport() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    run(
        &[
            "sweep",
            "--clients-steps",
            "1,4",
            "--duration",
            "1.5s",
            "--warmup",
            "0.5s",
            "--cooldown",
            "0.2s",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert_png(&out.join("throughput_latency.png"));
    assert_svg(&out.join("throughput_latency.svg"));
    let t = dir.path().join("t");
    let stdout = run(
        &[
            "transport",
            "--messages",
            "20000",
            "--rtt-duration",
            "1s",
            "--out",
            t.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert!(stdout.contains("messages/s"));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.join("transport.json")).unwrap()).unwrap();
    assert!(j["messages_per_s"].as_f64().unwrap() > 1000.0);
    assert!(j["rtt_us"]["p50"].as_f64().unwrap() > 0.0);
}

#[test]
fn bad_arguments_are_clear_errors() {
    let out = Command::new(bench_bin())
        .args(["local", "--duration", "ten"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a duration"));
    let out = Command::new(bench_bin())
        .args(["run", "--master", "127.0.0.1:1", "--duration", "3s"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("master"));
    // Values name their writer, so they need room for it.
    let out = Command::new(bench_bin())
        .args(["local", "--value-size", "16", "--duration", "3s"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--value-size 16") && err.contains("36"),
        "{err}"
    );
}

#[test]
fn sim_runs_seeds_and_replays_one() {
    let out = run(&["sim", "--seeds", "1..20"], Duration::from_secs(60));
    assert!(out.contains("20 seeds, 0 failed"), "{out}");
    let a = run(&["sim", "--seed", "7", "--trace"], Duration::from_secs(30));
    let b = run(&["sim", "--seed", "7", "--trace"], Duration::from_secs(30));
    assert_eq!(a, b, "a seed must replay exactly");
    assert!(a.lines().count() > 1000 && a.contains("Accept") && a.contains("seed 7: ok"));
}

/// One short chaos run on real processes: kills, restarts, partitions and slow
/// links under load, then the digests must agree and the history must check.
#[test]
fn a_short_chaos_run_converges_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c");
    let stdout = run(
        &[
            "chaos",
            "--duration",
            "6s",
            "--seed",
            "5",
            "--clients",
            "4",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(90),
    );
    assert!(stdout.contains("converged to one state digest"), "{stdout}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("chaos.json")).unwrap()).unwrap();
    assert_eq!(j["checker"]["verdict"], "ok");
    assert_eq!(j["convergence"]["converged"], true);
    assert!(
        j["actions"].as_array().unwrap().len() >= 3,
        "{}",
        j["actions"]
    );
    assert!(j["ops_ok"].as_u64().unwrap() > 100);
    assert_every_fault_applied(&j);
    assert_history_could_fail(&j, "paxos chaos");
}

/// WAN emulation: five sites (the EPaxos paper's), five replicas, a client at
/// every site. The median latency at each site is within 15% of the
/// protocol's model: for Multi-Paxos the round trip to the leader plus the
/// leader's round trip to its nearest majority; for EPaxos at 0% conflicts,
/// with each client at its nearest replica, one round trip to that replica
/// plus its round trip to its nearest fast quorum.
#[test]
fn five_site_wan_latencies_match_the_model() {
    for (protocol, extra) in [("paxos", None), ("epaxos", Some("--spread"))] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("w");
        let mut args = vec![
            "local",
            "--protocol",
            protocol,
            "--wan",
            "epaxos5",
            "--replicas",
            "5",
            "--clients",
            "5",
            "--duration",
            "7s",
            "--warmup",
            "2s",
            "--cooldown",
            "0.5s",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let stdout = run(&args, Duration::from_secs(60));
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        let sites = r["by_site"].as_array().expect("per-site results");
        assert_eq!(sites.len(), 5, "{stdout}");
        for s in sites {
            let p50 = s["latency_us"]["p50"].as_f64().unwrap();
            let model = s["model_us"].as_f64().expect("a model");
            assert!(s["ops"].as_u64().unwrap() >= 5, "{s}");
            assert!(
                (p50 - model).abs() <= 0.15 * model,
                "{protocol}, site {}: p50 {p50} us vs model {model} us",
                s["site"]
            );
        }
    }
}

/// EPaxos runs are linearizable at 0%, 25% and 100% conflicts (each history
/// goes through the checker, whose verdict lands in report.json).
#[test]
fn epaxos_histories_check_at_every_conflict_rate() {
    let dir = tempfile::tempdir().unwrap();
    for conflicts in ["0", "25", "100"] {
        let out = dir.path().join(format!("c{conflicts}"));
        let hist = out.join("h.jsonl");
        std::fs::create_dir_all(&out).unwrap();
        run(
            &[
                "local",
                "--protocol",
                "epaxos",
                "--duration",
                "2s",
                "--warmup",
                "0.5s",
                "--clients",
                "8",
                "--conflicts",
                conflicts,
                // Few private keys per client, half reads: every key is
                // written again and read, so the check could fail.
                "--keys",
                "64",
                "--reads",
                "50",
                "--history",
                hist.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            Duration::from_secs(60),
        );
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        assert_eq!(j["checker"]["verdict"], "ok", "{conflicts}% conflicts");
        assert_history_could_fail(&j, &format!("epaxos at {conflicts}% conflicts"));
        assert!(j["checker"]["operations"].as_u64().unwrap() > 100);
        assert!(
            j["history"]["overwritten_keys"].as_u64().unwrap() > 0,
            "{j}"
        );
        assert!(
            j["history"]["reads_with_value"].as_u64().unwrap() > 50,
            "{j}"
        );
    }
}

/// The short chaos run, for EPaxos.
#[test]
fn a_short_epaxos_chaos_run_converges_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c");
    let stdout = run(
        &[
            "chaos",
            "--protocol",
            "epaxos",
            "--duration",
            "6s",
            "--seed",
            "5",
            "--clients",
            "4",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(90),
    );
    assert!(stdout.contains("converged to one state digest"), "{stdout}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("chaos.json")).unwrap()).unwrap();
    assert_eq!(j["checker"]["verdict"], "ok");
    assert_eq!(j["convergence"]["converged"], true);
    // Every fault the schedule chose took effect, and there were some.
    let windows = assert_every_fault_applied(&j);
    assert!(j["ops_ok"].as_u64().unwrap() > 100, "{}", j["ops_ok"]);
    // Clients spread over the replicas keep working through every fault:
    // EPaxos has no leader to lose, and at most one replica is impaired.
    for w in windows {
        assert!(w["ops_ok"].as_u64().unwrap() > 0, "no work during {w}");
    }
    assert_history_could_fail(&j, "epaxos chaos");
}

/// The short chaos run, for sharded MDLin: chained multi-dispatch clients
/// over two shards under partitions, slow links, dropped messages and kills
/// with restarts on the durable journal. The history has reads and unique
/// values and is MDL; every shard's replicas, restarted ones included, agree.
#[test]
fn a_short_mdlin_chaos_run_converges_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c");
    let stdout = run(
        &[
            "chaos",
            "--protocol",
            "mdlin",
            "--shards",
            "2",
            "--duration",
            "6s",
            "--seed",
            "4",
            "--clients",
            "4",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(50),
    );
    assert!(stdout.contains("converged to one state digest"), "{stdout}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("chaos.json")).unwrap()).unwrap();
    assert_eq!(j["checker_kind"], "mdl");
    assert_eq!(j["checker"]["verdict"], "ok");
    assert_eq!(j["convergence"]["converged"], true);
    assert_eq!(j["shards"], 2);
    let windows = assert_every_fault_applied(&j);
    for w in windows {
        assert!(w["ops_ok"].as_u64().unwrap() > 0, "no work during {w}");
    }
    // Faults reached both shards (replicas 0-2 and 3-5).
    let ids: Vec<u64> = j["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| {
            let w = a["what"].as_str().unwrap();
            w.split("replica ")
                .nth(1)?
                .split([' ', ':'])
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        ids.iter().any(|r| *r < 3) && ids.iter().any(|r| *r >= 3),
        "{ids:?}"
    );
    // The history could have shown a violation: reads, and many distinct
    // values written to overwritten keys.
    assert_history_could_fail(&j, "mdlin chaos");
    // Seed 4 kills a replica of shard 1, which restarts on its journal.
    let said = |w: &str| {
        j["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["what"].as_str().unwrap().starts_with(w))
    };
    assert!(
        said("kill -9 replica") && said("restart replica"),
        "{}",
        j["actions"]
    );
    let h: checker::HistoryStats = serde_json::from_value(j["history"].clone()).unwrap();
    assert!(h.reads > 100 && h.writes > 100, "{h:?}");
    assert!(h.observable_keys > 10, "{h:?}");
    assert!(j["ops_ok"].as_u64().unwrap() > 100, "{}", j["ops_ok"]);
}

/// Three shards and requests of four operations each: report.json gives
/// request latency (`latency_us`) and operation latency (`op_latency_us`)
/// apart, a request takes about four operations' time (they go one at a
/// time), throughput is given in both units, and the per-operation history
/// checks.
#[test]
fn fanout_over_shards_reports_requests_and_operations() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f");
    let hist = dir.path().join("h.jsonl");
    let stdout = run(
        &[
            "local",
            "--shards",
            "3",
            "--fanout",
            "4",
            "--duration",
            "3s",
            "--warmup",
            "0.5s",
            "--cooldown",
            "0.5s",
            "--clients",
            "4",
            "--reads",
            "30",
            "--keys",
            "50",
            "--history",
            hist.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(stdout.contains("requests/s"), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["shards"], 3);
    assert_eq!(r["workload"]["fanout"], 4);
    let (req, op) = (&r["latency_us"], &r["op_latency_us"]);
    for f in ["p50", "p90", "p99", "p999", "p9999", "max", "mean", "min"] {
        assert!(req[f].as_f64().unwrap() > 0.0, "latency_us.{f}");
        assert!(op[f].as_f64().unwrap() > 0.0, "op_latency_us.{f}");
    }
    let ratio = req["mean"].as_f64().unwrap() / op["mean"].as_f64().unwrap();
    assert!(
        (3.4..4.6).contains(&ratio),
        "request/operation mean latency {ratio}"
    );
    let (ops, reqs) = (
        r["ops_ok"].as_u64().unwrap(),
        r["requests_ok"].as_u64().unwrap(),
    );
    assert!(reqs > 50, "{reqs} requests");
    // Requests complete inside the window with all four operations; a few
    // operations of requests that straddle its edges count alone.
    assert!(
        ops.abs_diff(4 * reqs) <= 4 * 4 * 2,
        "{ops} operations, {reqs} requests"
    );
    let (tops, treq) = (
        r["throughput_ops_s"].as_f64().unwrap(),
        r["throughput_requests_s"].as_f64().unwrap(),
    );
    assert!(
        (tops / treq - 4.0).abs() < 0.2,
        "{tops} ops/s vs {treq} requests/s"
    );
    assert_eq!(r["ops_failed"], 0);
    assert_eq!(r["checker"]["verdict"], "ok", "{}", r["checker"]);
    assert!(r["checker"]["operations"].as_u64().unwrap() >= ops);
    assert_history_could_fail(&r, "fan-out over shards");
    assert!(std::fs::read_to_string(out.join("op_latency.hgrm"))
        .unwrap()
        .contains("#[Max"));
    // One history line per operation, keys of every shard among them.
    let recs =
        bench::history::read(std::io::BufReader::new(std::fs::File::open(&hist).unwrap())).unwrap();
    let mut per_shard = [0usize; 3];
    for rec in &recs {
        per_shard[genericsmr::shard::shard_of(rec.key.as_bytes(), 3) as usize] += 1;
    }
    assert!(per_shard.iter().all(|n| *n > 0), "{per_shard:?}");
}

/// MDLin multi-dispatches: a request's eight operations go out at once,
/// chained, so a request takes far less than eight operations' time; the
/// history names each operation's predecessor and passes the MDL checker,
/// whose verdict is the report's.
#[test]
fn mdlin_requests_are_chained_and_checked_for_mdl() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let hist = dir.path().join("h.jsonl");
    let stdout = run(
        &[
            "local",
            "--protocol",
            "mdlin",
            "--shards",
            "3",
            "--fanout",
            "8",
            // Slower links keep the history to a few thousand operations, which
            // the black-box search decides (docs/mdl-checker.md, limits).
            "--link-delay",
            "1ms",
            "--duration",
            "3s",
            "--warmup",
            "0.5s",
            "--cooldown",
            "0.5s",
            "--clients",
            "4",
            "--reads",
            "30",
            "--keys",
            "50",
            "--history",
            hist.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(stdout.contains("chained, all at once"), "{stdout}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["protocol"], "mdlin");
    assert_eq!(r["workload"]["multi_dispatch"], true);
    assert!(r["requests_ok"].as_u64().unwrap() > 20);
    let (req, op) = (&r["latency_us"], &r["op_latency_us"]);
    let ratio = req["p50"].as_f64().unwrap() / op["p50"].as_f64().unwrap();
    assert!(
        ratio < 4.0,
        "eight chained operations take {ratio} times one operation's p50"
    );
    assert_eq!(r["checker"]["verdict"], "ok", "{}", r["checker"]);
    assert_history_could_fail(&r, "mdlin multi-dispatch");
    let text = std::fs::read_to_string(&hist).unwrap();
    let records = bench::history::read(text.as_bytes()).unwrap();
    let chained = records.iter().filter(|r| r.pred.is_some()).count();
    assert!(
        chained * 8 >= records.len() * 6,
        "{chained} of {} operations name a predecessor",
        records.len()
    );
}

/// `bench protocols` lists every registered protocol, and the server refuses
/// a protocol-specific parameter or broken variant its protocol does not
/// have, naming it (the registry and the seam, seen from the command line).
#[test]
fn the_registry_is_what_the_binaries_offer() {
    let out = Command::new(bench_bin()).arg("protocols").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for name in protocols::NAMES {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} missing from:\n{text}"
        );
    }
    let server = bench_bin().with_file_name("server");
    let help = Command::new(&server).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains(&protocols::NAMES.join(", ")),
        "server --help does not offer the registry's protocols:\n{help}"
    );
    let bad = Command::new(&server)
        .args(["--master", "127.0.0.1:1", "--protocol", "nonesuch"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("nonesuch"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // Refused before the server looks for a master (there is none at port 1).
    for (args, says) in [
        (
            vec!["--param", "coord=fast"],
            "paxos has no parameter \"coord\"",
        ),
        (vec!["--protocol", "mdlin", "--param", "coord=slow"], "slow"),
        (
            vec!["--protocol", "mdlin", "--param", "coord-timeout-ms=soon"],
            "coord-timeout-ms must be milliseconds",
        ),
    ] {
        let out = Command::new(&server)
            .args([
                "--master",
                "127.0.0.1:1",
                "--port",
                "0",
                "--master-patience-s",
                "1",
            ])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{args:?}: {err}"
        );
    }
}
