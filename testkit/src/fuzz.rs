//! The property runner: each property runs on fresh random input for a time budget, counts
//! the verdicts it saw and fails on a panic, on a decoder call that takes too long, or on a
//! refusal without a reason.

use arbtest::arbitrary::{self, Unstructured};
use std::cell::Cell;
use std::fmt::{Debug, Display};
use std::time::{Duration, Instant};

/// What a generator returns.
pub type Gen<T> = arbitrary::Result<T>;

/// Longest one decoder call may take on these small inputs before it counts as unbounded work:
/// far above a normal call (milliseconds), so two busy cores running other tests do not trip it.
pub const SLOW: Duration = Duration::from_secs(10);

thread_local! {
    /// Inputs the running property saw accepted and refused (each test runs on its own thread).
    static VERDICTS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Counts one decoder verdict, for the summary [`run`] prints.
pub fn note(accepted: bool) {
    VERDICTS.with(|v| {
        let (yes, no) = v.get();
        v.set(if accepted { (yes + 1, no) } else { (yes, no + 1) });
    });
}

/// Runs `property` on fresh random input for `budget_ms` (unless `ARBTEST_BUDGET_MS` says
/// otherwise); prints how many cases ran and how many inputs were accepted and refused.
pub fn run(name: &str, budget_ms: u64, mut property: impl FnMut(&mut Unstructured<'_>) -> Gen<()>) {
    let mut cases = 0u64;
    let started = Instant::now();
    VERDICTS.with(|v| v.set((0, 0)));
    let test = arbtest::arbtest(|u: &mut Unstructured<'_>| {
        cases += 1;
        property(u)
    })
    .size_max(1 << 14);
    match std::env::var_os("ARBTEST_BUDGET_MS") {
        Some(_) => test.run(),
        None => test.budget_ms(budget_ms).run(),
    }
    let verdicts = match VERDICTS.with(Cell::get) {
        (0, 0) => String::new(),
        (accepted, refused) => format!(", {accepted} accepted, {refused} refused"),
    };
    eprintln!("fuzz {name}: {cases} cases in {:?}{verdicts}", started.elapsed());
    assert!(cases > 0, "{name}: no case ran");
}

/// Runs `call`, failing when it takes longer than [`SLOW`] (a sign of unbounded work).
pub fn timed<T>(what: &str, call: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = call();
    let took = started.elapsed();
    assert!(took < SLOW, "{what} took {took:?}");
    out
}

/// A refusal must say why.
pub fn assert_reason(err: &impl Display, input: &dyn Debug) {
    assert!(!err.to_string().trim().is_empty(), "refusal without a reason for {input:?}");
}
