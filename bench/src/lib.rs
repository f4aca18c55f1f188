//! # bench: experiments with one command
//!
//! - [`workload`]: what is sent (mix, conflicts, Zipf, value size, seed);
//! - [`driver`]: how it is sent (closed loop, open loop, flood), one lean task
//!   per client; `multi` (internal) drives sharded deployments and requests of
//!   several operations (`--fanout`), one connection per shard per client;
//! - [`stats`]: per-client HdrHistograms merged at the end, counters, time series;
//! - [`report`] and [`plot`]: `report.json`, CSV, `.hgrm`, PNG and SVG plots;
//! - [`outputs`]: those files read back; [`figures`]: the standard plots drawn from them;
//! - [`history`]: every operation as a JSON line, for the checker (the format
//!   lives in the `checker` crate);
//! - [`local`]: a local cluster of real processes;
//! - [`route`]: leader discovery (per shard) shared by the clients of a run;
//! - [`transport_bench`]: the transport's own ceiling, with no protocol;
//! - [`report_page`], [`compare`], [`reproduce`]: `bench report`, `bench compare`
//!   and `bench reproduce`, working from the files runs and sweeps leave.

#![warn(missing_docs)]

pub mod chaos;
pub mod compare;
pub mod driver;
pub mod figures;
pub mod html;
pub use checker::history;
pub mod local;
mod multi;
pub mod outputs;
pub mod plot;
pub mod report;
pub mod report_page;
pub mod reproduce;
pub mod route;
mod stall;
pub mod stats;
pub mod transport_bench;
pub mod wan;
mod window;
pub mod workload;
