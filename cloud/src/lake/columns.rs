//! A frame's columns read out as plain vectors, whatever type the part files gave them: text,
//! numbers, counters and times, with a missing column as all nulls (older part files lack
//! columns newer ones have).

use anyhow::Result;
use polars::prelude::{DataFrame, DataType};

/// The column as text (nulls where absent).
pub fn text(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    let Ok(c) = df.column(name) else { return Ok(vec![None; df.height()]) };
    Ok(c.cast(&DataType::String)?.str()?.iter().map(|v| v.map(str::to_string)).collect())
}

/// The column as numbers (nulls where absent).
pub fn number(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    let Ok(c) = df.column(name) else { return Ok(vec![None; df.height()]) };
    Ok(c.cast(&DataType::Float64)?.f64()?.iter().collect())
}

/// The column as unsigned counts (nulls where absent or negative).
pub fn count(df: &DataFrame, name: &str) -> Result<Vec<Option<u64>>> {
    let Ok(c) = df.column(name) else { return Ok(vec![None; df.height()]) };
    Ok(c.cast(&DataType::Int64)?.i64()?.iter().map(|v| v.and_then(|v| u64::try_from(v).ok())).collect())
}

/// A time column (`ts`, `edge_ts`) as ms since the Unix epoch (nulls where absent).
pub fn millis(df: &DataFrame, name: &str) -> Result<Vec<Option<i64>>> {
    let Ok(c) = df.column(name) else { return Ok(vec![None; df.height()]) };
    Ok(c.cast(&DataType::Int64)?.i64()?.iter().collect())
}
