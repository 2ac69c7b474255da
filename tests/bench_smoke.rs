//! The load bench's smoke mode, so the bench cannot silently rot: a few dozen real sessions
//! against the real binary, failing on any error the bench sees.

#[allow(dead_code)]
#[path = "../benches/load/main.rs"]
mod load;

#[test]
fn load_bench_smoke_run_sees_no_errors() {
    let clean = load::run_with_args(&["--smoke"]).expect("the smoke plan runs");
    assert!(clean, "the smoke run saw errors (see its report above)");
}
