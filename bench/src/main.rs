//! `bench`: run experiments against a local or remote cluster.

fn main() -> anyhow::Result<()> {
    client::pipe::end_quietly_on_closed_pipe();
    genericsmr::logging::init("warn");
    bench_cli::main()
}

mod bench_cli;
mod results_cli;
