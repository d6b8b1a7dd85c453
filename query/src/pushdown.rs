//! Late materialization where it pays: a Parquet scan evaluates its filter while
//! decoding (`pushdown_filters`) only when that lets it skip other columns' values.
//!
//! DataFusion either pushes every scan's filter into the Parquet reader or none. Pushed,
//! a point filter on `pid` reads `pid` first and decodes the other columns only for the
//! rows that pass (half the time of the query on a 30 M-event capture); but a join's
//! dynamic filter pushed the same way cost the join 40%, and `array_has` on `argv`
//! evaluated as a row filter 65%, and a `--since` window that keeps every row 11% to
//! 13% more CPU (README, Queries). So this rule, run after DataFusion's own, turns it on per
//! scan: in plans without a join, for scans that read more columns than their filter
//! does, whose filter reads no nested column and asks for values (`=` or `IN`), the
//! filters that usually keep few rows. The filter above the scan stays, so the rows are
//! the same either way.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, FileSource, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, InListExpr};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

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
