//! A seeded standard normal source for tests that simulate noisy process values: the same
//! values every run, on every machine, without a random-number crate.

/// Standard normal values from a seed (xorshift64* and Box–Muller).
#[derive(Debug, Clone)]
pub struct Normal(u64);

impl Normal {
    /// A source seeded with `seed` (0 is replaced: xorshift has no zero state).
    pub fn new(seed: u64) -> Normal {
        Normal(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// A uniform value in (0, 1): the top 53 bits of the next state.
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// The next standard normal value.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}
