//! # protocols: the one registry of replication protocols
//!
//! Every protocol implements [`genericsmr::protocol::Protocol`] in its own
//! crate and is listed once, in the [`registry!`] line below. Everything
//! that lets a user choose a protocol by name (`server --protocol`, `bench
//! local/sweep/sim/chaos --protocol`, the client's fault rules, the master)
//! asks this crate: by name for what a protocol declares ([`info`]), or with
//! a [`Visit`] to run generic code (`run::<P>`) on the protocol chosen at run
//! time. docs/protocols.md walks through adding one.

#![warn(missing_docs)]

pub use genericsmr::protocol::{Caps, Protocol, Rejoin};

/// Generic code to run on a protocol chosen by name at run time (see [`visit`]).
pub trait Visit {
    /// What the code returns.
    type Out;
    /// Runs it on protocol `P`.
    fn visit<P: Protocol>(self) -> Self::Out;
}

/// What a protocol declares, without its type.
#[derive(Debug, Clone, Copy)]
pub struct Info {
    /// Its name (`--protocol NAME`).
    pub name: &'static str,
    /// One line on what it is.
    pub about: &'static str,
    /// What it declares about itself.
    pub caps: Caps,
    /// Its messages' type codes and names.
    pub codes: &'static [(u8, &'static str)],
}

impl Info {
    /// The declarations of `P`.
    pub fn of<P: Protocol>() -> Info {
        Info {
            name: P::NAME,
            about: P::ABOUT,
            caps: P::CAPS,
            codes: P::CODES,
        }
    }
}

macro_rules! registry {
    ($($p:ty),+ $(,)?) => {
        /// The name of every protocol, the default first.
        pub const NAMES: &[&str] = &[$(<$p as Protocol>::NAME),+];

        /// Runs `v` on the protocol called `name`; `None` if there is none.
        pub fn visit<V: Visit>(name: &str, v: V) -> Option<V::Out> {
            $(
                if name == <$p as Protocol>::NAME {
                    return Some(v.visit::<$p>());
                }
            )+
            None
        }

        /// What every protocol declares, the default first.
        pub fn all() -> Vec<Info> {
            vec![$(Info::of::<$p>()),+]
        }
    };
}

// The one list. Adding a protocol: its crate, this line, and docs.
registry! { paxos::Replica, epaxos::Replica, mdlin::Replica, raft::Replica, mencius::Replica }

/// The protocol a tool runs when none is named.
pub const DEFAULT: &str = NAMES[0];

/// What the protocol called `name` declares; `None` if there is none.
pub fn info(name: &str) -> Option<Info> {
    all().into_iter().find(|i| i.name == name)
}

/// What the protocol called `name` declares about itself; the defaults of
/// a plain leader-based protocol if there is none (callers take names from
/// [`NAMES`] through their argument parsers).
pub fn caps(name: &str) -> Caps {
    info(name).map(|i| i.caps).unwrap_or(Caps {
        leaderless: false,
        elects: false,
        durable: false,
        rejoin: Rejoin::Never,
        sharded_mesh: false,
        multi_dispatch: false,
    })
}

/// An error for a protocol name nothing is registered under.
pub fn unknown(name: &str) -> String {
    format!(
        "no protocol is called {name:?}; choose one of: {}",
        NAMES.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_each_protocols_codes_are_unique() {
        let all = all();
        for (i, a) in all.iter().enumerate() {
            assert!(
                all[i + 1..].iter().all(|b| b.name != a.name),
                "{} twice",
                a.name
            );
            for (j, (c, n)) in a.codes.iter().enumerate() {
                assert!(
                    a.codes[j + 1..].iter().all(|(d, _)| d != c),
                    "{}: {n} shares code {c:#04x}",
                    a.name
                );
            }
        }
        assert_eq!(info(DEFAULT).map(|i| i.name), Some(NAMES[0]));
        assert!(info("no-such").is_none());
    }

    #[test]
    fn visit_reaches_the_named_protocol() {
        struct Name;
        impl Visit for Name {
            type Out = &'static str;
            fn visit<P: Protocol>(self) -> &'static str {
                P::NAME
            }
        }
        for n in NAMES {
            assert_eq!(visit(n, Name), Some(*n));
        }
        assert_eq!(visit("no-such", Name), None);
    }
}
