//! The conformance suites of `suites/` as nextest tests, through the entry any crate uses
//! (`stackcheck::nextest`): one bring-up per suite per run, tests named as `stackcheck run` names them.

fn main() {
    stackcheck::nextest::main(concat!(env!("CARGO_MANIFEST_DIR"), "/../suites"));
}
