//! The cost of the EPaxos core per command, without sockets: three replicas
//! in one thread, each proposing a burst of commands that its batching turns
//! into one instance, with every message delivered until all is executed.
//! It measures what `bench local` cannot separate from the network and the
//! load generator: conflict tracking, execution, the store and the dedup
//! table. Run with `cargo bench -p epaxos`.

use std::collections::VecDeque;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use epaxos::messages::EpaxosMsg;
use epaxos::{Config, Replica};
use genericsmr::command::Command;
use genericsmr::effects::Effects;
use genericsmr::messages::Propose;

/// Commands each replica proposes per round (one batched instance each).
const BURST: u64 = 32;
/// Keys per client: as many as `bench --keys` gives each client.
const KEYS: u64 = 100_000;

struct Cluster {
    reps: Vec<Replica>,
    queue: VecDeque<(u8, u8, EpaxosMsg)>,
    now: u64,
    /// Next sequence number of each replica's client.
    seq: Vec<u64>,
    rng: u64,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let reps = (0..n)
            .map(|i| {
                let mut c = Config::new(i as u8, n);
                c.batch = true;
                Replica::new(c)
            })
            .collect();
        Cluster {
            reps,
            queue: VecDeque::new(),
            now: 1,
            seq: vec![0; n],
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn on(&mut self, i: u8, f: impl FnOnce(&mut Replica, u64, &mut Effects<EpaxosMsg>)) {
        let mut fx = Effects::without_persistence();
        let now = self.now;
        f(&mut self.reps[i as usize], now, &mut fx);
        self.reps[i as usize].flush(now, &mut fx);
        for (d, m) in fx.sends.drain(..) {
            for t in d.targets(i, self.reps.len()) {
                self.queue.push_back((i, t, m.clone()));
            }
        }
    }

    /// A put or get (half each) on one of the client's private keys, as
    /// `bench --conflicts 0` sends.
    fn command(&mut self, client: u64) -> Command {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let seq = &mut self.seq[client as usize];
        *seq += 1;
        let seq = *seq;
        let key = Bytes::from(format!("c{client}-{}", (self.rng >> 1) % KEYS));
        let mut c = if self.rng & 1 == 0 {
            Command::get(client, seq, key)
        } else {
            Command::put(client, seq, key, Bytes::from_static(b"vvvvvvvvvvvvvvvv"))
        };
        // The client has its answers up to the previous round (a real client
        // acknowledges, so the dedup table stays small).
        c.acked_below = seq.saturating_sub(BURST);
        c
    }

    /// One round: every replica proposes a burst, then the network settles.
    fn round(&mut self) {
        for i in 0..self.reps.len() as u8 {
            let cmds: Vec<Command> = (0..BURST).map(|_| self.command(i as u64)).collect();
            self.on(i, |r, now, fx| {
                for cmd in cmds {
                    r.handle_propose(now, 1, Propose { cmd }, fx);
                }
            });
        }
        while let Some((from, to, m)) = self.queue.pop_front() {
            self.on(to, |r, now, fx| r.handle_peer(now, from, m, fx));
        }
        // Heartbeats (and with them garbage collection) as often as a
        // server under load sends them.
        self.now += 1_000_000;
        if self.now % 50_000_000 == 1 {
            for i in 0..self.reps.len() as u8 {
                self.on(i, |r, now, fx| r.tick(now, fx));
            }
        }
    }
}

fn core(c: &mut Criterion) {
    let mut g = c.benchmark_group("epaxos_core");
    g.throughput(Throughput::Elements(3 * BURST));
    // One cluster for every sample, filled first, so the store and the
    // tables are measured at their steady size, not while they grow.
    let mut cl = Cluster::new(3);
    for _ in 0..30_000 {
        cl.round();
    }
    g.bench_function("round_3_replicas_0pct_conflicts", |b| {
        b.iter(|| cl.round());
    });
    g.finish();
}

criterion_group!(benches, core);
criterion_main!(benches);
