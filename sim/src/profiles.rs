//! The simulator's register maps: the profile files in `deploy/profiles/`, embedded at build
//! time. The simulator encodes every register through these profiles, so the files are exactly
//! what it serves, and the edge config it writes carries them inline. Likewise the node map
//! `deploy/opcua/moldops-sim-machine.toml` of a machine served over OPC UA.

use moldops_edge::sources::opcua::map::NodeProfile;
use moldops_shared::profile::Profile;
use std::sync::LazyLock;

const MACHINE: &str = include_str!("../../deploy/profiles/moldops-sim-machine.toml");
const TCU: &str = include_str!("../../deploy/profiles/moldops-sim-tcu.toml");
const DRYER: &str = include_str!("../../deploy/profiles/moldops-sim-dryer.toml");
const SCALE: &str = include_str!("../../deploy/profiles/moldops-sim-scale.toml");
const MACHINE_UA: &str = include_str!("../../deploy/opcua/moldops-sim-machine.toml");

/// Parses an embedded file (a profile or a node map). The files are part of the build and covered by tests, so a
/// failure here is a bug in this repository, not bad input.
fn parse<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> T {
    match toml::from_str(text) {
        Ok(p) => p,
        Err(e) => panic!("embedded file deploy/{file} is invalid: {e}"),
    }
}

static MACHINE_P: LazyLock<Profile> = LazyLock::new(|| parse("profiles/moldops-sim-machine.toml", MACHINE));
static TCU_P: LazyLock<Profile> = LazyLock::new(|| parse("profiles/moldops-sim-tcu.toml", TCU));
static DRYER_P: LazyLock<Profile> = LazyLock::new(|| parse("profiles/moldops-sim-dryer.toml", DRYER));
static SCALE_P: LazyLock<Profile> = LazyLock::new(|| parse("profiles/moldops-sim-scale.toml", SCALE));
static MACHINE_UA_P: LazyLock<NodeProfile> =
    LazyLock::new(|| parse("opcua/moldops-sim-machine.toml", MACHINE_UA));

/// Injection machine: shot counter, state, mold code, clocks, 23 process values, history ring.
pub fn machine_profile() -> Profile {
    MACHINE_P.clone()
}

/// Mold temperature controller: supply and return temperature, flow.
pub fn tcu_profile() -> Profile {
    TCU_P.clone()
}

/// Material dryer: dew point and hopper temperature.
pub fn dryer_profile() -> Profile {
    DRYER_P.clone()
}

/// Part-weight scale: weight of the last part and the number of the shot it came from.
pub fn scale_profile() -> Profile {
    SCALE_P.clone()
}

/// Node map of a machine served over OPC UA: the machine profile's record names and roles.
pub fn machine_node_map() -> NodeProfile {
    MACHINE_UA_P.clone()
}

/// Registers a device's image needs: one past the highest register any tag or the history
/// ring uses.
pub fn image_len(p: &Profile) -> usize {
    let tags = p.tags.iter().filter_map(|t| t.end()).map(|e| usize::from(e) + 1).max().unwrap_or(0);
    let ring =
        p.history.as_ref().map_or(0, |h| usize::from(h.base) + usize::from(h.depth) * usize::from(h.stride));
    tags.max(ring)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FEATURE_NAMES;
    use moldops_shared::profile::DataType;

    #[test]
    fn profiles_are_valid() {
        for p in [machine_profile(), tcu_profile(), dryer_profile(), scale_profile()] {
            assert!(p.validate().is_empty(), "{}: {:?}", p.name, p.validate());
            assert!(p.timestamp.is_some(), "{} has no timestamp", p.name);
        }
    }

    #[test]
    fn machine_layout_matches_the_process_model() {
        let p = machine_profile();
        let h = p.history.clone().unwrap_or_else(|| panic!("machine profile has no history"));
        let live_end = u32::from(h.copy_of) + u32::from(h.stride);
        for t in &p.tags {
            let end = t.end().map_or(u32::MAX, u32::from);
            assert!(end < live_end, "tag {} lies outside the live block copied to history", t.name);
        }
        let names: Vec<&str> = p.value_tags().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, FEATURE_NAMES.to_vec());
        assert!(p.value_tags().iter().all(|t| t.dtype == DataType::F32 && t.range.is_some()));
        assert_eq!(image_len(&p), 200 + 64 * 70);
    }

    #[test]
    fn the_node_map_has_the_machine_profile_names_and_roles() {
        let (map, p) = (machine_node_map(), machine_profile());
        assert_eq!(map.validate(), Vec::<String>::new());
        let roles =
            |a: &Profile| [&a.shot_counter, &a.mold_code, &a.state, &a.timestamp].map(|r| r.clone()).to_vec();
        let ua = map.to_profile();
        assert_eq!(roles(&ua), roles(&p));
        assert_eq!(map.shot_values, p.shot_values);
        for t in ua.tags.iter().filter(|t| t.name != "shot_time_ms") {
            let m = p.tag(&t.name).unwrap_or_else(|| panic!("{} is not in the machine profile", t.name));
            assert_eq!((&t.unit, t.range), (&m.unit, m.range), "{}", t.name);
        }
        let mut names: Vec<&str> = ua.tags.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        let mut want: Vec<&str> =
            p.tags.iter().map(|t| t.name.as_str()).filter(|n| *n != "clock_ms").collect();
        want.sort_unstable();
        assert_eq!(names, want, "every machine record name but the controller clock");
    }
}
