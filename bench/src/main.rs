//! `bench`: run experiments against a local or remote cluster.

fn main() -> anyhow::Result<()> {
    genericsmr::logging::init("warn");
    bench_cli::main()
}

mod bench_cli;
mod results_cli;
