//! Machine selection for fan-out: `--machine M` (repeatable) and `--shard I/N`, so that N
//! processes — the pods of an Indexed Job, say — each take a stable, disjoint share of a lake's
//! machines, and together every machine exactly once. A machine's shard depends only on its
//! id (the sha256 of its partition folder name), never on which other machines exist, so
//! `etl`, `train` and `score` put a machine in the same shard.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// Most shards a selection may ask for.
pub const MAX_SHARDS: u32 = 1024;

/// One shard of `count`: the machines whose hash falls in bucket `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based.
    pub index: u32,
    /// Shards in all (1 to [`MAX_SHARDS`]).
    pub count: u32,
}

impl Shard {
    /// Whether the machine whose partition folder is `folder` (`machine=…`, as
    /// [`crate::lake::machine_dir`] names it) is in this shard.
    pub fn owns_folder(&self, folder: &str) -> bool {
        let digest = Sha256::digest(folder.as_bytes());
        let mut head = [0u8; 8];
        head.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(head) % u64::from(self.count) == u64::from(self.index)
    }

    /// Whether machine `machine_id` is in this shard.
    pub fn owns(&self, machine_id: &str) -> bool {
        self.owns_folder(&folder_of(machine_id))
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let bad = || format!("--shard {text:?}: give I/N, shard I (0 to N−1) of N (1 to {MAX_SHARDS})");
        let (i, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let (index, count) =
            (i.trim().parse::<u32>().map_err(|_| bad())?, n.trim().parse::<u32>().map_err(|_| bad())?);
        if !(1..=MAX_SHARDS).contains(&count) || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Serialize for Shard {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Shard, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

use crate::lake::machine_folder as folder_of;

/// `--machine` and `--shard` of a command that works per machine.
#[derive(Debug, Clone, Default, PartialEq, clap::Args, Serialize, Deserialize)]
pub struct MachineSelection {
    /// Only these machines (repeatable; default: all).
    #[arg(long = "machine")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<String>,
    /// Only shard I of N of the machines (`I/N`, I from 0): N runs with I = 0 … N−1 cover every
    /// machine once, each machine always in the same shard (with --machine: those of them in it).
    #[arg(long)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

impl MachineSelection {
    /// Whether machine `machine_id` is selected.
    pub fn includes(&self, machine_id: &str) -> bool {
        self.includes_folder(&folder_of(machine_id))
    }

    /// Whether the machine whose partition folder is `folder` is selected.
    pub fn includes_folder(&self, folder: &str) -> bool {
        (self.machines.is_empty() || self.machines.iter().any(|m| folder_of(m) == folder))
            && self.shard.is_none_or(|s| s.owns_folder(folder))
    }

    /// Whether every machine is selected.
    pub fn is_all(&self) -> bool {
        self.machines.is_empty() && self.shard.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_machines_disjointly_and_cover_them_all() {
        let machines: Vec<String> = (1..=200).map(|i| format!("M{i}")).collect();
        let n = 7;
        let shards: Vec<Shard> = (0..n).map(|i| format!("{i}/{n}").parse().expect("shard")).collect();
        let mut sizes = vec![0; n as usize];
        for m in &machines {
            let owners: Vec<u32> = shards.iter().filter(|s| s.owns(m)).map(|s| s.index).collect();
            assert_eq!(owners.len(), 1, "{m} in {owners:?}");
            sizes[owners[0] as usize] += 1;
        }
        assert!(sizes.iter().all(|s| (15..=45).contains(s)), "roughly even: {sizes:?}");
        // The same machine, the same shard, whatever else exists; the folder form agrees.
        assert!(shards[3].owns("M42") == shards[3].owns_folder("machine=M42"));
        assert_eq!(shards[2].to_string(), "2/7");
        for bad in ["", "3", "7/7", "1/0", "-1/3", "a/b", "1/2000"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_selection_takes_named_machines_within_its_shard() {
        let all = MachineSelection::default();
        assert!(all.is_all() && all.includes("anything"));
        let named = MachineSelection { machines: vec!["M1".into(), "M 2".into()], shard: None };
        assert!(named.includes("M1") && named.includes("M 2") && !named.includes("M3"));
        assert!(named.includes_folder(&folder_of("M 2")));
        let shard: Shard = "0/2".parse().expect("shard");
        let both = MachineSelection { shard: Some(shard), ..named.clone() };
        assert_eq!(both.includes("M1"), shard.owns("M1"));
        assert!(!both.includes("M3"));
        let json = serde_json::to_string(&both).expect("json");
        assert_eq!(serde_json::from_str::<MachineSelection>(&json).expect("back"), both);
    }
}
