//! The numbers the classifiers see: a dense row-major [`Matrix`] and the labelled
//! [`Dataset`] of one machine (and mold) cut out of etl_data or aug_data.

use anyhow::{Result, bail};

/// Labels at or above this are defects: a shot label is 0 or 1; a lot's defect ratio (0.5 and
/// up: at least half the lot was bad) counts as a defect too. Every stage reads labels through
/// [`is_defect`], so a row is never a defect for one stage and good for another.
pub const DEFECT_AT: f64 = 0.5;

/// Whether a label (shot 0/1, or a lot's defect ratio) marks a defect; NaN is not one.
pub fn is_defect(label: f64) -> bool {
    label >= DEFECT_AT
}

/// Dense row-major matrix of f64.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns (values per row).
    pub cols: usize,
    /// The `rows × cols` values, row after row.
    pub data: Vec<f64>,
}

impl Matrix {
    /// A `rows × cols` matrix from row-major `data`.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self> {
        if rows * cols != data.len() {
            bail!("matrix of {rows}×{cols} needs {} values, got {}", rows * cols, data.len());
        }
        Ok(Self { rows, cols, data })
    }

    /// A matrix from equally long rows.
    pub fn from_rows(rows: &[Vec<f64>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != cols) {
            bail!("row {i} has {} values, row 0 has {cols}", r.len());
        }
        Self::new(rows.len(), cols, rows.concat())
    }

    /// Row `i` as a slice of `cols` values; panics if `i >= rows`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The value at row `i`, column `j`; panics if out of range.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }

    /// The rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Matrix { rows: idx.len(), cols: self.cols, data }
    }

    /// Rows of `self` followed by the rows of `other` (same width).
    pub fn stack(&self, other: &Matrix) -> Matrix {
        let mut data = self.data.clone();
        data.extend_from_slice(&other.data);
        Matrix { rows: self.rows + other.rows, cols: self.cols, data }
    }
}

/// Labelled rows of one evaluation group. Real rows are scored; synthetic rows
/// (`synthetic[i] == true`) only ever join training folds.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// e.g. `m1` or `m1 / mold 9000a`.
    pub name: String,
    /// Machine the rows come from.
    pub machine_id: String,
    /// Mold the rows are restricted to, or `None` when the group is the whole machine.
    pub mold: Option<String>,
    /// Names of the feature columns of `x`, in column order.
    pub features: Vec<String>,
    /// Feature values, one row per sample and one column per entry of `features`.
    pub x: Matrix,
    /// 0 = good, 1 = defective.
    pub y: Vec<u8>,
    /// Per row, whether it is synthetic (augmented) rather than real; same length as `y`.
    pub synthetic: Vec<bool>,
    /// Rows left out and why (unlabelled, missing values), for the record.
    pub dropped: Vec<(String, usize)>,
    /// Feature columns left out (constant or mostly missing).
    pub dropped_features: Vec<String>,
}

impl Dataset {
    /// Indices of the real rows.
    pub fn real(&self) -> Vec<usize> {
        (0..self.y.len()).filter(|&i| !self.synthetic[i]).collect()
    }

    /// Indices of the synthetic rows.
    pub fn synthetic_rows(&self) -> Vec<usize> {
        (0..self.y.len()).filter(|&i| self.synthetic[i]).collect()
    }

    /// (good, defective) counts among the real rows.
    pub fn class_counts(&self) -> (usize, usize) {
        let pos = self.real().iter().filter(|&&i| self.y[i] == 1).count();
        (self.real().len() - pos, pos)
    }
}

#[cfg(test)]
mod tests {
    /// A lot half bad is a defect in every stage (evaluate used `> 0.5`, augment and train
    /// `>= 0.5`: a ratio of exactly 0.5 was a defect in one and good in the other).
    #[test]
    fn half_a_lot_bad_is_a_defect_and_nan_is_not() {
        assert!(super::is_defect(0.5) && super::is_defect(1.0));
        assert!(!super::is_defect(0.499) && !super::is_defect(0.0) && !super::is_defect(f64::NAN));
    }
}
