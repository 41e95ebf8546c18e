//! Data quality for the learning stages (the reference's `iqr_mds_gan`, fixed): the percentile
//! [`outliers`] fence, classical [`mds`] and [`dbscan`] behind the [`weak`] labels, and the
//! synthetic-data [`gate`]. Pure computations on rows of `f64`; `augment` does the I/O.

pub mod dbscan;
pub mod gate;
pub mod mds;
pub mod outliers;
pub mod stats;
pub mod weak;
