//! Benchmark (not a test): a group-by on one string column in memory, capq's rule against
//! DataFusion's own plan, where every batch has its own buffers (as strings made in memory
//! or a plain Parquet page): the case the rule must leave as fast as it was.
//!
//!     cargo run --release -p capq --example bench_groupkeys -- [DISTINCT] [ROUNDS]
//!
//! 9.8 M rows of 40-byte strings in 2 partitions of 8,192-row batches, DISTINCT distinct
//! values (default 5,000). Prints seconds per round for each plan, taking turns.
use std::sync::Arc;
use std::time::Instant;

use capq::groupkeys::StringGroupKeys;
use datafusion::arrow::array::{Int64Array, RecordBatch, StringViewBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

fn batch(n: usize, seed: usize, distinct: usize) -> RecordBatch {
    let mut b = StringViewBuilder::new();
    for i in 0..n {
        b.append_value(format!("/home/alice/src/project/file-{}.rs", (i * 7919 + seed * 104_729) % distinct));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Int64, false),
        Field::new("s", DataType::Utf8View, false),
    ]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..n as i64)), Arc::new(b.finish())])
        .expect("batch")
}

#[tokio::main]
async fn main() -> datafusion::error::Result<()> {
    let mut args = std::env::args().skip(1);
    let distinct: usize = args.next().map_or(5000, |a| a.parse().expect("DISTINCT: a number"));
    let rounds: usize = args.next().map_or(3, |a| a.parse().expect("ROUNDS: a number"));
    let parts: Vec<Vec<RecordBatch>> =
        (0..2).map(|p| (0..600).map(|i| batch(8192, p * 1000 + i, distinct)).collect()).collect();
    let sql = "SELECT s, count(*) AS c FROM t GROUP BY s ORDER BY c DESC, s LIMIT 3";
    for round in 1..=rounds {
        for rule in [false, true] {
            let config = SessionConfig::new().with_target_partitions(2);
            let mut b = SessionStateBuilder::new().with_config(config).with_default_features();
            if rule {
                b = b.with_physical_optimizer_rule(Arc::new(StringGroupKeys::default()));
            }
            let ctx = SessionContext::new_with_state(b.build());
            ctx.register_table("t", Arc::new(MemTable::try_new(parts[0][0].schema(), parts.clone())?))?;
            let t = Instant::now();
            ctx.sql(sql).await?.collect().await?;
            let plan = if rule { "capq's rule" } else { "DataFusion" };
            println!("round {round}  {plan:12} {:.3} s", t.elapsed().as_secs_f64());
        }
    }
    Ok(())
}
