//! Import profiles: how the columns of a historical table become records (TOML, so a new brand
//! is a file, not code). A profile names the time column with its format and time zone, where
//! the machine comes from (a column with a value map, or a fixed id), the shot counter and mold
//! columns, the value columns (or every numeric column), the columns to ignore and the cell
//! texts that mean "no value". Examples: `deploy/profiles/import-*.toml`.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// What the rows of a table are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// Shots of a machine, into `raw_data`.
    #[default]
    Shots,
    /// Readings of a peripheral device, into `peripheral_data`.
    Peripheral,
}

/// The time column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSpec {
    /// Name of the column holding each row's time.
    pub column: String,
    /// A chrono format (`%Y-%m-%d %H:%M:%S`), `rfc3339`, `epoch_ms` or `epoch_s`; `auto`
    /// (default) tries RFC 3339, then `YYYY-MM-DD[ T]HH:MM:SS[.f]`.
    #[serde(default = "auto")]
    pub format: String,
    /// IANA zone of naive timestamps (e.g. `Asia/Seoul`); default UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
}

fn auto() -> String {
    "auto".into()
}

/// Where the machine (and, for peripherals, the device) of a row comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    /// Fixed machine id for every row.
    #[serde(default)]
    pub id: Option<String>,
    /// Column holding the machine label (trimmed).
    #[serde(default)]
    pub column: Option<String>,
    /// Label → machine id.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// Machine id of a label that is not in `map` (without it such a row is quarantined).
    #[serde(default)]
    pub default: Option<String>,
    /// Labels whose rows are skipped (counted in the report, not quarantined).
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// One import profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportProfile {
    /// Name of the profile (e.g. `woojin`).
    pub name: String,
    /// Shots or peripheral readings (default `shots`).
    #[serde(default)]
    pub kind: TableKind,
    /// Site recorded with every row.
    #[serde(default = "default_site")]
    pub site: String,
    /// The time column, its format and time zone (`[time]`).
    pub time: TimeSpec,
    /// Where each row's machine comes from (`[machine]`: exactly one of `id` and `column`).
    #[serde(default)]
    pub machine: MachineSpec,
    /// Shot counter column (shots; without it the line number is the shot number).
    #[serde(default)]
    pub shot_number: Option<String>,
    /// Mold / product code column (trimmed).
    #[serde(default)]
    pub mold: Option<String>,
    /// Peripheral device short name (`tcu`); the device id is `{machine}-{device}`.
    #[serde(default)]
    pub device: Option<String>,
    /// Value columns; empty = every column whose cells are mostly numbers.
    #[serde(default)]
    pub values: Vec<String>,
    /// Columns never taken as values.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Cell texts meaning "no value" (after trimming); default `""`, `NaN`, `nan`, `NULL`, `null`.
    #[serde(default = "default_nulls")]
    pub null_values: Vec<String>,
    /// Encoding of text files: `auto` (default: byte-order mark, else UTF-8 if valid, else the
    /// detected legacy encoding) or a name such as `utf-8`, `cp949`, `euc-kr`, `utf-16le`,
    /// `windows-1252`, `shift_jis`.
    #[serde(default = "auto")]
    pub encoding: String,
    /// Cell delimiter of text files: `auto` (default: the likeliest of `,` `;` tab `|` in the
    /// header line), one ASCII character, or `tab`.
    #[serde(default = "auto")]
    pub delimiter: String,
    /// Workbook sheet to import (default: the first).
    #[serde(default)]
    pub sheet: Option<String>,
}

fn default_site() -> String {
    "import".into()
}

fn default_nulls() -> Vec<String> {
    ["", "NaN", "nan", "NULL", "null"].map(String::from).to_vec()
}

impl ImportProfile {
    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> Result<ImportProfile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let p: ImportProfile =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        p.check().with_context(|| format!("profile {}", path.display()))?;
        Ok(p)
    }

    /// The generic profile: a time column, a fixed machine id, every numeric column a value.
    pub fn generic(time_column: &str, machine_id: &str, kind: TableKind) -> ImportProfile {
        ImportProfile {
            name: "generic".into(),
            kind,
            site: default_site(),
            time: TimeSpec { column: time_column.into(), format: auto(), time_zone: None },
            machine: MachineSpec { id: Some(machine_id.into()), ..Default::default() },
            shot_number: None,
            mold: None,
            device: None,
            values: Vec::new(),
            ignore: Vec::new(),
            null_values: default_nulls(),
            encoding: auto(),
            delimiter: auto(),
            sheet: None,
        }
    }

    /// Every problem at once.
    pub fn check(&self) -> Result<()> {
        let mut problems = Vec::new();
        if self.machine.id.is_none() == self.machine.column.is_none() {
            problems.push("[machine] needs exactly one of `id` and `column`".to_string());
        }
        if let Some(tz) = &self.time.time_zone
            && tz.parse::<chrono_tz::Tz>().is_err()
        {
            problems.push(format!("unknown time zone {tz:?}"));
        }
        if self.kind == TableKind::Peripheral && self.device.is_none() {
            problems.push("a peripheral profile needs `device`".to_string());
        }
        if let Err(e) = super::table::encoding::by_label(&self.encoding) {
            problems.push(e.to_string());
        }
        if let Err(e) = parse_delimiter(&self.delimiter) {
            problems.push(e.to_string());
        }
        anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
        Ok(())
    }

    /// How to read this profile's files: encoding, delimiter, sheet, and workbook date cells
    /// written in the time format (ISO when the format is not a chrono pattern).
    pub fn read_options(&self) -> Result<super::table::ReadOptions> {
        let date_format = match self.time.format.as_str() {
            "auto" | "rfc3339" | "epoch_ms" | "epoch_s" => {
                super::table::workbook::ISO_DATE_FORMAT.to_string()
            }
            pattern => pattern.to_string(),
        };
        Ok(super::table::ReadOptions {
            encoding: super::table::encoding::by_label(&self.encoding)?,
            delimiter: parse_delimiter(&self.delimiter)?,
            sheet: self.sheet.clone(),
            date_format,
            ..Default::default()
        })
    }

    /// The time zone of naive timestamps.
    pub fn zone(&self) -> chrono_tz::Tz {
        self.time.time_zone.as_deref().and_then(|z| z.parse().ok()).unwrap_or(chrono_tz::UTC)
    }
}

/// A delimiter setting: `auto` (or empty) is `None`; `tab` or `\t` is a tab; else one ASCII
/// character other than a quote, a line break or a letter or digit.
pub fn parse_delimiter(text: &str) -> Result<Option<u8>> {
    match text {
        "" | "auto" => Ok(None),
        "tab" | "\\t" | "\t" => Ok(Some(b'\t')),
        d if d.len() == 1
            && d.is_ascii()
            && !d.chars().all(|c| c.is_ascii_alphanumeric() || "\"\r\n".contains(c)) =>
        {
            Ok(Some(d.as_bytes()[0]))
        }
        other => anyhow::bail!(
            "delimiter {other:?}: give auto, tab or one ASCII character (not a quote, letter or digit)"
        ),
    }
}
