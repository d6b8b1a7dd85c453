//! Late materialization where it pays: a Parquet scan evaluates its filter while
//! decoding (`pushdown_filters`) only when that lets it skip other columns' values.
//!
//! DataFusion either pushes every scan's filter into the Parquet reader or none. Pushed,
//! a point filter on `pid` reads `pid` first and decodes the other columns only for the
//! rows that pass (half the time of the query on a 30 M-event capture); but a join's
//! dynamic filter pushed the same way cost the join 40%, and `array_has` on `argv`
//! evaluated as a row filter 65%, and a `--since` window that keeps every row 11% to
//! 13% more CPU, and `op = 'open'`, half the rows, 2.5 times the time (README, Queries).
//! So this rule, run after DataFusion's own, turns it on per scan: in plans without a
//! join, for scans that read more columns than their filter does, whose filter reads no
//! nested column and asks for values (`=` or `IN`), and keeps its rows in few runs.
//!
//! The last is measured: the parts of the filter that ask for values are evaluated on
//! one row group of the scan's middle segment (its first 65,536 rows, their columns
//! alone: 1.5 to 4 ms of CPU per plan), and the scan is pushed when the rows they keep
//! there start at most one run per 256 rows. The reader pays per run of kept rows, so
//! scattered rows cost more than they save: on 30 M events, 0.002% of the rows (one pid)
//! took 0.09 s pushed against 0.22 s not, 1.4% were level, 2.8% took 0.66 against
//! 0.28 s. Where the sample cannot be read (segments on S3, a middle segment without the
//! filter's column), the scan is pushed as before. The filter above the scan stays, so
//! the rows are the same either way.

use std::collections::HashSet;
use std::fs::File;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::Schema;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::{FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::logical_expr::Operator;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, InListExpr};
use datafusion::physical_expr::utils::{collect_columns, conjunction, split_conjunction};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use object_store::local::LocalFileSystem;

/// The rule: see the module's doc.
#[derive(Debug, Default)]
pub struct SelectivePushdown;

impl PhysicalOptimizerRule for SelectivePushdown {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        let mut join = false;
        plan.apply(|node| {
            join = node.name().contains("Join");
            Ok(if join { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
        })?;
        if join {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(exec) = node.downcast_ref::<DataSourceExec>() else { return Ok(Transformed::no(node)) };
            let Some((conf, source)) = exec.downcast_to_file_source::<ParquetSource>() else {
                return Ok(Transformed::no(node));
            };
            let Some(predicate) = source.filter() else { return Ok(Transformed::no(node)) };
            // Scalar columns filtered for values, and some other column read: the filter's
            // columns are decoded first, the others for the rows that pass.
            let schema = node.schema();
            let columns = collect_columns(&predicate);
            let filtered: HashSet<&str> = columns.iter().map(|c| c.name()).collect();
            let scalar = |name: &&str| schema.field_with_name(name).is_ok_and(|f| !f.data_type().is_nested());
            let others = schema.fields().iter().any(|f| !filtered.contains(f.name().as_str()));
            if !others || !filtered.iter().all(scalar) || !asks_for_values(&predicate)? {
                return Ok(Transformed::no(node));
            }
            // Sampled: the parts that ask for values (a time window beside them would count
            // the sample's rows outside it as dropped).
            let mut asked = Vec::new();
            for part in split_conjunction(&predicate) {
                if asks_for_values(part)? {
                    asked.push(Arc::clone(part));
                }
            }
            let asked = conjunction(asked);
            if sample(conf, &asked).is_some_and(|s| s.runs * RUN_EVERY > s.rows) {
                return Ok(Transformed::no(node));
            }
            let source = source.clone().with_pushdown_filters(true);
            let conf = FileScanConfigBuilder::from(conf.clone()).with_source(Arc::new(source)).build();
            Ok(Transformed::yes(Arc::new(exec.clone().with_data_source(Arc::new(conf))) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "capq_selective_pushdown"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether `predicate` compares a column with `=` or `IN` anywhere (in a conjunction, say
/// `ts >= .. AND pid = ..`): a point lookup, not only a range such as a time window.
fn asks_for_values(predicate: &Arc<dyn PhysicalExpr>) -> Result<bool> {
    let mut found = false;
    predicate.apply(|e| {
        found = e.downcast_ref::<BinaryExpr>().is_some_and(|b| *b.op() == Operator::Eq)
            || e.downcast_ref::<InListExpr>().is_some_and(|l| !l.negated());
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })?;
    Ok(found)
}

/// Rows per run of kept rows, at least, for a scan to be pushed (see the module's doc).
const RUN_EVERY: usize = 256;

/// Rows of the sample, at most (the recorder writes 131,072 to a row group by default;
/// `--row-group-rows` may ask for more).
const SAMPLE_ROWS: usize = 65_536;

/// What the filter kept of a sample: rows read, and runs of consecutive kept rows.
#[derive(Debug)]
struct Sample {
    rows: usize,
    runs: usize,
}

/// Evaluates `predicate` on the middle row group of the scan's middle segment, reading
/// only the columns it names. None when that cannot be done here: segments that are not
/// local files, a filter on a column a segment lacks or on a partition column, a read
/// error (the query itself reports those).
fn sample(conf: &FileScanConfig, predicate: &Arc<dyn PhysicalExpr>) -> Option<Sample> {
    if conf.object_store_url.as_str() != "file:///" {
        return None;
    }
    let files: Vec<_> = conf.file_groups.iter().flat_map(|g| g.iter()).collect();
    let file = files.get(files.len() / 2)?;
    let path = LocalFileSystem::new().path_to_filesystem(&file.object_meta.location).ok()?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).ok()?).ok()?;
    let groups = reader.metadata().num_row_groups();
    if groups == 0 {
        return None;
    }
    // The columns it reads, in the segment and as the table has them (strings as views).
    let table = conf.file_schema();
    let names: Vec<String> = collect_columns(predicate).iter().map(|c| c.name().to_string()).collect();
    let roots: Vec<usize> = names.iter().map(|n| reader.schema().index_of(n).ok()).collect::<Option<_>>()?;
    let types: Vec<_> = names.iter().map(|n| table.field_with_name(n).ok().cloned()).collect::<Option<_>>()?;
    let mask = ProjectionMask::roots(reader.parquet_schema(), roots.iter().copied());
    // Read back in the segment's column order: the filter's columns point there.
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by_key(|&i| roots[i]);
    let schema = Arc::new(Schema::new(order.iter().map(|&i| types[i].clone()).collect::<Vec<_>>()));
    let predicate = Arc::clone(predicate)
        .transform(|e| {
            Ok(match e.downcast_ref::<Column>() {
                Some(c) => Transformed::yes(Arc::new(Column::new_with_schema(c.name(), &schema)?) as _),
                None => Transformed::no(e),
            })
        })
        .ok()?
        .data;
    let batches =
        reader.with_projection(mask).with_row_groups(vec![groups / 2]).with_limit(SAMPLE_ROWS).build().ok()?;
    let (mut rows, mut runs, mut kept_last) = (0, 0, false);
    for batch in batches {
        let batch = batch.ok()?;
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| cast(c, f.data_type()))
            .collect::<std::result::Result<_, _>>()
            .ok()?;
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).ok()?;
        let kept = predicate.evaluate(&batch).ok()?.into_array(batch.num_rows()).ok()?;
        let kept = kept.as_boolean_opt()?;
        for k in kept.iter() {
            let k = k == Some(true);
            runs += usize::from(k && !kept_last);
            kept_last = k;
        }
        rows += batch.num_rows();
    }
    Some(Sample { rows, runs })
}
