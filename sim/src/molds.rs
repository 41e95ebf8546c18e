//! The molds the simulated plant runs: product codes (from the original's data) and their
//! process setpoints, shot-to-shot spread, part weight and mold temperature. Values follow the
//! ranges of the original shot table (cycle ~60–70 s, cushion ~21–26 mm, barrel 190–235 °C,
//! feed throat ~40 °C).

use super::features::{N_FEATURES, Values};

/// One mold (product) with its setpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct MoldSpec {
    /// Product / mold code as the controller shows it.
    pub code: &'static str,
    /// Nominal process values, in feature order.
    pub nominal: Values,
    /// Nominal part weight, g.
    pub part_weight: f64,
    /// Mold temperature controller supply setpoint, °C.
    pub tcu_supply: f64,
}

/// Shot-to-shot standard deviation of each process value (same for every mold).
pub const SPREAD: Values = Values([
    0.12, 0.04, 0.30, 0.35, 0.015, 0.25, 0.08, 0.45, 0.25, 0.9, 1.2, 1.0, 1.2, 1.2, 0.25, 0.2, 0.35, 0.35,
    0.35, 0.35, 0.35, 0.35, 0.5,
]);

/// Standard deviation of the part weight, g.
pub const WEIGHT_SPREAD: f64 = 0.15;

const fn v(a: [f64; N_FEATURES]) -> Values {
    Values(a)
}

/// The molds, in the order the plant cycles through them.
pub static MOLDS: [MoldSpec; 3] = [
    MoldSpec {
        code: "9000a 09520",
        nominal: v([
            9.0, 3.75, 25.0, 68.0, 5.10, 23.5, 26.0, 162.5, 1023.0, 85.0, 120.0, 100.0, 112.0, 95.0, 18.2,
            17.1, 232.0, 228.0, 222.0, 215.0, 205.0, 195.0, 40.0,
        ]),
        part_weight: 152.0,
        tcu_supply: 60.0,
    },
    MoldSpec {
        code: "09520 9000R",
        nominal: v([
            8.6, 3.60, 24.2, 66.5, 5.10, 22.5, 25.5, 159.8, 1023.0, 82.0, 118.0, 98.0, 108.0, 90.0, 18.0,
            17.0, 230.0, 226.0, 220.0, 212.0, 202.0, 192.0, 40.0,
        ]),
        part_weight: 148.5,
        tcu_supply: 58.0,
    },
    MoldSpec {
        code: "GURAD REF UPP DA63",
        nominal: v([
            7.8, 3.20, 20.5, 61.5, 4.90, 24.8, 27.0, 141.0, 980.0, 95.0, 110.0, 92.0, 102.0, 84.0, 16.5,
            15.6, 225.0, 222.0, 216.0, 208.0, 198.0, 190.0, 40.0,
        ]),
        part_weight: 86.3,
        tcu_supply: 45.0,
    },
];

/// The mold with this code.
pub fn mold_spec(code: &str) -> Option<&'static MoldSpec> {
    MOLDS.iter().find(|m| m.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Feature;

    #[test]
    fn molds_fit_the_controller_and_the_original_ranges() {
        for m in &MOLDS {
            assert!(m.code.len() <= 18, "{} does not fit the 9-register mold_code", m.code);
            let n = &m.nominal;
            assert!((60.0..=70.0).contains(&n[Feature::CycleTime]));
            assert!((21.0..=26.0).contains(&n[Feature::CushionPosition]));
            assert!(n[Feature::PlasticizingTime] + n[Feature::InjectionTime] < n[Feature::CycleTime]);
            assert!(n[Feature::AverageScrewRpm] < n[Feature::MaxScrewRpm]);
            assert!(n[Feature::AverageBackPressure] < n[Feature::MaxBackPressure]);
        }
    }
}
