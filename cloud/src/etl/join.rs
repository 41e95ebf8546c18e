//! The joins that widen a machine's kept shots: every peripheral device's latest reading at or
//! before the shot within the tolerance (a backward as-of join per device, columns
//! `{device}.{value}`, see [`moldops_shared::features`]), and the ground-truth labels — shot
//! level on (shot number, UTC day), lot level where the shot falls in a lot's time span and has
//! no shot label, its label then being the lot's defect ratio.

use anyhow::Result;
use moldops_shared::features::{device_alias, peripheral_column};
use polars::prelude::*;

fn asof(tolerance_ms: Option<i64>) -> JoinType {
    JoinType::AsOf(Box::new(AsOfOptions {
        strategy: AsofStrategy::Backward,
        tolerance: tolerance_ms.map(Scalar::from),
        tolerance_str: None,
        left_by: None,
        right_by: None,
        allow_eq: true,
        check_sortedness: false,
    }))
}

/// Joins every peripheral device's readings onto `shots` (sorted by `ts_ms`). `peripherals` is
/// the machine's readings (lake columns plus `ts_ms`). Returns the frame and the peripheral
/// column names added.
pub fn peripherals(
    shots: LazyFrame,
    peripherals: Option<DataFrame>,
    machine_id: &str,
    tolerance_ms: i64,
) -> Result<(LazyFrame, Vec<String>)> {
    let Some(p) = peripherals.filter(|p| p.height() > 0) else { return Ok((shots, Vec::new())) };
    let devices = p.column("device_id")?.str()?.unique()?.sort(false);
    let value_cols: Vec<PlSmallStr> = p
        .get_column_names()
        .into_iter()
        .filter(|c| !crate::lake::is_lake_column(c.as_str()) && c.as_str() != "ts_ms")
        .cloned()
        .collect();
    let mut out = shots;
    let mut added = Vec::new();
    for device in devices.iter().flatten() {
        let alias = device_alias(machine_id, device);
        let rows = p.filter(&p.column("device_id")?.str()?.equal(device))?;
        let mut select = vec![col("ts_ms").alias("__p_ts")];
        let mut used: Vec<PlSmallStr> = ["ts_ms", "edge_id", "seq"].map(PlSmallStr::from).to_vec();
        for c in &value_cols {
            if rows.column(c)?.null_count() < rows.height() {
                let name = peripheral_column(alias, c);
                select.push(col(c.clone()).alias(name.as_str()));
                added.push(name);
                used.push(c.clone());
            }
        }
        let right = latest_per_time(rows.select(used)?)?.lazy().select(select);
        out = out
            .join_builder()
            .with(right)
            .left_on([col("ts_ms")])
            .right_on([col("__p_ts")])
            .how(asof(Some(tolerance_ms)))
            .finish()
            .drop(cols(["__p_ts"]));
    }
    Ok((out, added))
}

/// A device's readings sorted by time, one per time: of readings with the same time the last
/// by (edge, seq) wins. Equal times are rare, so the readings are sorted by time alone first
/// and the full sort only runs when that leaves two with one time.
fn latest_per_time(rows: DataFrame) -> Result<DataFrame> {
    let by_time = rows.sort(["ts_ms"], SortMultipleOptions::default().with_maintain_order(true))?;
    let ts = by_time.column("ts_ms")?.i64()?;
    let mut prev = None;
    let repeated = ts.iter().any(|t| prev.replace(t) == Some(t));
    if !repeated {
        return Ok(by_time);
    }
    Ok(by_time
        .lazy()
        .sort(["ts_ms", "edge_id", "seq"], SortMultipleOptions::default())
        .unique_stable_generic(Some(vec![col("ts_ms")]), UniqueKeepStrategy::Last)
        .collect()?)
}

/// Attaches shot-level labels (`labels`: `shot_number`, `ts`, `label`, `defect`, `seq`) and
/// lot-level labels (`lots`: `from_ts`, `to_ts`, `defect_ratio`) to `shots` (sorted by `ts_ms`).
pub fn labels(shots: LazyFrame, labels: Option<DataFrame>, lots: Option<DataFrame>) -> Result<LazyFrame> {
    let day = |c: &str| col(c).cast(DataType::Date).cast(DataType::Int32);
    let mut out = shots.with_column(day("ts").alias("__day"));
    out = match labels.filter(|l| l.height() > 0) {
        Some(l) => {
            let right = l
                .lazy()
                .sort(["seq"], SortMultipleOptions::default())
                .select([
                    col("shot_number").alias("__l_shot"),
                    day("ts").alias("__l_day"),
                    col("label").cast(DataType::Float64),
                    col("defect").cast(DataType::String),
                ])
                .unique_stable_generic(Some(vec![col("__l_shot"), col("__l_day")]), UniqueKeepStrategy::Last);
            out.join(
                right,
                [col("shot_number"), col("__day")],
                [col("__l_shot"), col("__l_day")],
                JoinArgs { maintain_order: MaintainOrderJoin::Left, ..JoinArgs::new(JoinType::Left) },
            )
            .with_column(
                when(col("label").is_not_null())
                    .then(lit("shot"))
                    .otherwise(lit(NULL).cast(DataType::String))
                    .alias("label_source"),
            )
        }
        None => out.with_columns([
            lit(NULL).cast(DataType::Float64).alias("label"),
            lit(NULL).cast(DataType::String).alias("label_source"),
            lit(NULL).cast(DataType::String).alias("defect"),
        ]),
    };
    if let Some(lots) = lots.filter(|l| l.height() > 0) {
        let right = lots
            .lazy()
            .select([
                col("from_ts").cast(DataType::Int64).alias("__lot_from"),
                col("to_ts").cast(DataType::Int64).alias("__lot_to"),
                col("defect_ratio").cast(DataType::Float64).alias("__lot_ratio"),
            ])
            .sort(["__lot_from"], SortMultipleOptions::default());
        let in_lot = col("label").is_null().and(col("ts_ms").lt_eq(col("__lot_to"))).fill_null(lit(false));
        out = out
            .join_builder()
            .with(right)
            .left_on([col("ts_ms")])
            .right_on([col("__lot_from")])
            .how(asof(None))
            .finish()
            .with_columns([
                when(in_lot.clone()).then(col("__lot_ratio")).otherwise(col("label")).alias("label"),
                when(in_lot).then(lit("lot")).otherwise(col("label_source")).alias("label_source"),
            ])
            .drop(cols(["__lot_from", "__lot_to", "__lot_ratio"]));
    }
    Ok(out.drop(cols(["__day"])))
}
