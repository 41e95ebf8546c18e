//! The process values of one simulated shot: their names (the original shot table's column
//! names, also the machine profile's value tags, in register order) and a fixed-size array
//! indexed by [`Feature`].

use std::ops::{Index, IndexMut};

/// One process value of a shot, in register order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Injection time, s.
    InjectionTime,
    /// Filling time (until switch-over), s.
    FillingTime,
    /// Plasticizing (screw recovery) time, s.
    PlasticizingTime,
    /// Cycle time, s; also the simulated time between the ends of consecutive shots.
    CycleTime,
    /// Clamp closing time, s.
    ClampCloseTime,
    /// Cushion (screw position left at the end of holding), mm.
    CushionPosition,
    /// Screw position at switch-over to holding pressure, mm.
    SwitchOverPosition,
    /// Screw position at the end of plasticizing, mm.
    PlasticizingPosition,
    /// Clamp position when open, mm.
    ClampOpenPosition,
    /// Peak injection speed, mm/s.
    MaxInjectionSpeed,
    /// Peak screw speed while plasticizing, rpm.
    MaxScrewRpm,
    /// Mean screw speed while plasticizing, rpm (below the peak).
    AverageScrewRpm,
    /// Peak injection pressure, bar.
    MaxInjectionPressure,
    /// Peak pressure at switch-over, bar.
    MaxSwitchOverPressure,
    /// Peak back pressure while plasticizing, bar.
    MaxBackPressure,
    /// Mean back pressure while plasticizing, bar (below the peak).
    AverageBackPressure,
    /// Barrel zone 1 temperature, °C (nozzle side).
    Barrel1,
    /// Barrel zone 2 temperature, °C.
    Barrel2,
    /// Barrel zone 3 temperature, °C.
    Barrel3,
    /// Barrel zone 4 temperature, °C.
    Barrel4,
    /// Barrel zone 5 temperature, °C.
    Barrel5,
    /// Barrel zone 6 temperature, °C.
    Barrel6,
    /// Barrel zone 7 temperature, °C (feed throat).
    Barrel7,
}

/// Number of process values per shot.
pub const N_FEATURES: usize = 23;

/// Tag names of the process values, in [`Feature`] order.
pub const FEATURE_NAMES: [&str; N_FEATURES] = [
    "Injection_Time",
    "Filling_Time",
    "Plasticizing_Time",
    "Cycle_Time",
    "Clamp_Close_Time",
    "Cushion_Position",
    "Switch_Over_Position",
    "Plasticizing_Position",
    "Clamp_Open_Position",
    "Max_Injection_Speed",
    "Max_Screw_RPM",
    "Average_Screw_RPM",
    "Max_Injection_Pressure",
    "Max_Switch_Over_Pressure",
    "Max_Back_Pressure",
    "Average_Back_Pressure",
    "Barrel_Temperature_1",
    "Barrel_Temperature_2",
    "Barrel_Temperature_3",
    "Barrel_Temperature_4",
    "Barrel_Temperature_5",
    "Barrel_Temperature_6",
    "Barrel_Temperature_7",
];

/// The barrel zones, nozzle side (zone 1) to feed throat (zone 7).
pub const BARREL: [Feature; 7] = [
    Feature::Barrel1,
    Feature::Barrel2,
    Feature::Barrel3,
    Feature::Barrel4,
    Feature::Barrel5,
    Feature::Barrel6,
    Feature::Barrel7,
];

/// Process values of one shot.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Values(pub [f64; N_FEATURES]);

impl Values {
    /// `(tag name, value)` pairs in register order.
    pub fn named(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        FEATURE_NAMES.iter().copied().zip(self.0.iter().copied())
    }
}

impl Index<Feature> for Values {
    type Output = f64;
    fn index(&self, f: Feature) -> &f64 {
        &self.0[f as usize]
    }
}

impl IndexMut<Feature> for Values {
    fn index_mut(&mut self, f: Feature) -> &mut f64 {
        &mut self.0[f as usize]
    }
}
